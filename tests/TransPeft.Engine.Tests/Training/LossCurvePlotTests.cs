using System.Buffers.Binary;
using TransPeft.Experiments.Plots;

namespace TransPeft.Engine.Tests.Training;

public class LossCurvePlotTests
{
    [Fact]
    public void Draws_train_and_validation_loss_into_a_png_of_the_requested_size()
    {
        var dir = TempDirs.Create("tpeft-plot");
        var metrics = Path.Combine(dir, "metrics.jsonl");
        var lines = Enumerable.Range(1, 40).Select(s => $"{{\"step\":{s},\"loss\":{3.0 / Math.Sqrt(s):R},\"lr\":0.001}}").ToList();
        lines.Insert(10, "{\"step\":10,\"val_loss\":1.2,\"val_targets\":50}");
        lines.Add("{\"step\":40,\"val_loss\":0.7,\"val_targets\":50}");
        File.WriteAllLines(metrics, lines);
        var png = Path.Combine(dir, "loss.png");
        var series = LossCurvePlot.Save(metrics, png, 800, 450);
        Assert.Equal(40, series.Loss.Length);
        Assert.Equal([10.0, 40.0], series.ValSteps);
        var bytes = File.ReadAllBytes(png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        Assert.Equal(800, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)));
        Assert.Equal(450, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
        Assert.True(bytes.Length > 5000);
    }

    [Fact]
    public void Smoothing_starts_at_the_first_value_and_follows_a_constant()
    {
        var s = LossCurvePlot.Smooth([2, 2, 2, 2], 0.9);
        Assert.All(s, x => Assert.Equal(2, x, 12));
        var t = LossCurvePlot.Smooth([4, 0], 0.5);
        Assert.Equal(4, t[0], 12);
        Assert.Equal(4.0 / 3, t[1], 12); // (0.5*0.5*4 + 0.5*0) / (1 - 0.25)
    }

    [Fact]
    public void A_malformed_metrics_line_is_reported_with_file_and_line()
    {
        var dir = TempDirs.Create("tpeft-plot");
        var metrics = Path.Combine(dir, "metrics.jsonl");
        File.WriteAllLines(metrics, ["{\"step\":1,\"loss\":2.0}", "{\"step\":2,\"loss\""]);
        var e = Assert.Throws<FormatException>(() => LossCurvePlot.Read(metrics));
        Assert.Contains($"{metrics}:line 2", e.Message);
        File.WriteAllText(metrics, "");
        Assert.Throws<InvalidOperationException>(() => LossCurvePlot.Save(metrics, Path.Combine(dir, "x.png")));
    }
}
