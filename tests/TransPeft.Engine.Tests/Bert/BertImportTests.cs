using TransPeft.Engine.IO;
using TransPeft.Engine.IO.Onnx;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Tests.Bert;

[Collection(BertPackagesCollection.Name)]
public sealed class BertImportTests(BertPackages packages)
{
    [SkippableFact]
    public void MiniLmImportsAsSixLayerBertWithEveryMatMulNamed()
    {
        BertPackages.Require(BertPackages.MiniLm);
        var (onnx, vocab) = BertOnnxImporter.ReadPackageResources(BertPackages.Dll(BertPackages.MiniLm)!);
        var graph = OnnxReader.Read(onnx, "minilm");
        Assert.Equal(7, graph.IrVersion);
        Assert.Equal(13, graph.Opset);
        Assert.Equal(148, graph.Initializers.Count);
        Assert.Equal(22_713_772L, graph.Initializers.Values.Sum(t => t.Elements));
        Assert.Contains("last_hidden_state", graph.Outputs);
        var import = BertOnnxImporter.Import(graph, "minilm");
        var c = import.Config;
        Assert.Equal((30522, 384, 6, 12, 1536, 512, 2, 1e-12), (c.VocabSize, c.HiddenSize, c.NumLayers, c.NumHeads, c.IntermediateSize, c.MaxPositionEmbeddings, c.TypeVocabSize, c.LayerNormEps));
        // 36 MatMul weights named through their bias Add, stored [out, in]: W_hf[o, i] = W_onnx[i, o].
        Assert.Equal(36, import.Tensors.Keys.Count(k => System.Text.RegularExpressions.Regex.IsMatch(k,
            @"^encoder\.layer\.\d\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)\.weight$")));
        var inter = import.Tensors["encoder.layer.0.intermediate.dense.weight"];
        Assert.Equal([1536L, 384L], inter.Shape);
        var mm = graph.Initializers.Values.Single(t => t.Dims.SequenceEqual(new long[] { 384, 1536 }) && t.Float32!.AsSpan(0, 8).SequenceEqual(Transposed(inter.Data, 1536, 384, 8)));
        Assert.NotNull(mm);
        Assert.Equal(30522, System.Text.Encoding.UTF8.GetString(vocab).Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [SkippableFact]
    public void ArcticInfersHeadsAndEpsFromConstantNodes()
    {
        BertPackages.Require(BertPackages.Arctic);
        var (onnx, _) = BertOnnxImporter.ReadPackageResources(BertPackages.Dll(BertPackages.Arctic)!);
        var graph = OnnxReader.Read(onnx, "arctic");
        Assert.Equal(6, graph.IrVersion);
        Assert.Equal(101, graph.Initializers.Count);
        var c = BertOnnxImporter.Import(graph, "arctic").Config;
        Assert.Equal((6, 12, 384), (c.NumLayers, c.NumHeads, c.HiddenSize));
        Assert.Equal(1e-12, c.LayerNormEps, 1e-15);
    }

    [SkippableFact]
    public void HfFolderHasConfigSafetensorsTokenizerAndPooling()
    {
        var dir = packages.Import(BertPackages.Arctic).Dir;
        Assert.Equal(BertPooling.Cls, BertModel.ReadPooling(dir));
        var config = BertConfig.Load(Path.Combine(dir, "config.json"));
        Assert.Equal(6, config.NumLayers);
        using var st = SafetensorsReader.Open(Path.Combine(dir, "model.safetensors"));
        foreach (var (name, shape) in BertWeights.ExpectedShapes(config))
            Assert.Equal(shape, st.GetInfo(name).Shape);
        Assert.Contains("\"do_lower_case\": true", File.ReadAllText(Path.Combine(dir, "tokenizer_config.json")));
        Assert.Throws<IOException>(() => BertOnnxImporter.WriteHfFolder(
            new BertImport(config, new Dictionary<string, (long[], float[])>()), [], dir, BertPooling.Cls, "x", overwrite: false));
    }

    [Fact]
    public void TruncatedOrGarbageOnnxIsOneNamedError()
    {
        var garbage = new byte[] { 0x3A, 0xFF, 0xFF, 0xFF, 0x0F, 0x01 };
        var e = Assert.Throws<OnnxFormatException>(() => OnnxReader.Read(garbage, "bad.onnx"));
        Assert.StartsWith("bad.onnx: ModelProto", e.Message);
        var noGraph = new byte[] { 0x08, 0x07 };
        Assert.Contains("graph", Assert.Throws<OnnxFormatException>(() => OnnxReader.Read(noGraph, "empty.onnx")).Message);
        var rng = new Random(5);
        for (int i = 0; i < 300; i++)
        {
            var bytes = new byte[rng.Next(1, 64)];
            rng.NextBytes(bytes);
            try { OnnxReader.Read(bytes, "fuzz.onnx"); }
            catch (OnnxFormatException) { }
        }
    }

    private static float[] Transposed(float[] w, int outDim, int inDim, int count)
    {
        // The first `count` entries of the [in, out] layout: row 0 of Wᵀ = column 0 of W.
        var r = new float[count];
        for (int o = 0; o < count; o++) r[o] = w[o * inDim];
        return r;
    }
}
