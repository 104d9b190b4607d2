using System.Buffers.Binary;
using TransPeft.Experiments.Plots;
using TransPeft.Engine.Analysis;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Analysis;

public class UpdateHeatmapTests
{
    [Fact]
    public void WritesAPngOfTheRequestedSize()
    {
        var old = TinyModels.Model(5);
        var updated = old.Clone();
        updated.Layers[1].Down.Data[0] += 1f;
        var analysis = UpdateAnalyzer.Analyze(old, updated);
        var dir = Directory.CreateTempSubdirectory("tpeft-plot-");
        try
        {
            var path = Path.Combine(dir.FullName, "update.png");
            UpdateHeatmap.SavePng(analysis, path, 640, 360);
            var bytes = File.ReadAllBytes(path);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], bytes[..4]);
            Assert.Equal(640, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16))); // IHDR width
            Assert.Equal(360, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20))); // IHDR height
            Assert.Single(Directory.GetFiles(dir.FullName)); // no temporary file left behind
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void LayerZeroIsTheTopRowAndModulesRunLeftToRight()
    {
        // Layer 0 q_proj changes by exactly 1 (zeroed: yellow in viridis), layer 1 down_proj by 0.5 (teal).
        var old = TinyModels.Model(5);
        var updated = old.Clone();
        Array.Clear(updated.Layers[0].Q.Data);
        for (int i = 0; i < updated.Layers[1].Down.Length; i++) updated.Layers[1].Down.Data[i] *= 1.5f;
        var analysis = UpdateAnalyzer.Analyze(old, updated);
        Assert.Equal(1.0, analysis.RelativeChange[0][0], 12);
        Assert.Equal(0.5, analysis.RelativeChange[1][6], 6);
        var dir = Directory.CreateTempSubdirectory("tpeft-plot-");
        try
        {
            var path = Path.Combine(dir.FullName, "update.png");
            UpdateHeatmap.SavePng(analysis, path);
            using var bmp = SkiaSharp.SKBitmap.Decode(path);
            (double X, double Y, int N) yellow = default, teal = default;
            for (int y = 0; y < bmp.Height; y++)
                for (int x = 0; x < bmp.Width * 85 / 100; x++) // leave out the colour bar on the right
                {
                    var c = bmp.GetPixel(x, y);
                    if (c.Red > 200 && c.Green > 200 && c.Blue < 100) yellow = (yellow.X + x, yellow.Y + y, yellow.N + 1);
                    else if (c.Red < 60 && c.Green is > 120 and < 160 && c.Blue is > 120 and < 160) teal = (teal.X + x, teal.Y + y, teal.N + 1);
                }
            Assert.True(yellow.N > 100 && teal.N > 100, $"cells not found: {yellow.N} yellow, {teal.N} teal pixels");
            Assert.True(yellow.Y / yellow.N < teal.Y / teal.N, "layer 0 must be drawn above layer 1");
            Assert.True(yellow.X / yellow.N < teal.X / teal.N, "q_proj must be drawn left of down_proj");
        }
        finally { dir.Delete(true); }
    }
}
