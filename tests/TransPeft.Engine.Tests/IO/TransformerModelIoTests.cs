using TransPeft.Engine.IO;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Tests.IO;

/// <summary>A model folder (config.json + weights) saved and loaded: values, layouts, and inconsistent folders.</summary>
public sealed class TransformerModelIoTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    internal static string FixtureDir(string fixture, string part) => Path.Combine(AppContext.BaseDirectory, "Fixtures", fixture, part);

    private static readonly ModelConfig Llama = new()
    {
        ModelType = "llama", HiddenSize = 32, IntermediateSize = 48, NumLayers = 2, NumHeads = 4, NumKvHeads = 2,
        HeadDim = 8, VocabSize = 50, RopeTheta = 500000, RopeScaling = new RopeScaling(8, 1, 4, 64),
        MaxPositionEmbeddings = 256, BosTokenId = 1, EosTokenIds = [2, 3],
    };

    private static readonly ModelConfig QwenTied = new()
    {
        ModelType = "qwen2", HiddenSize = 32, IntermediateSize = 40, NumLayers = 1, NumHeads = 4, NumKvHeads = 1,
        HeadDim = 8, VocabSize = 37, TieWordEmbeddings = true, AttentionBias = true,
    };

    private static void AssertSameWeights(TransformerModel expected, TransformerModel actual, Func<float, float>? expect = null)
    {
        var e = expected.Parameters().ToList();
        var a = actual.Parameters().ToList();
        Assert.Equal(e.Select(p => p.Name), a.Select(p => p.Name));
        for (int i = 0; i < e.Count; i++)
        {
            Assert.Equal(e[i].Shape, a[i].Shape);
            var want = expect is null ? e[i].Data : e[i].Data.Select(expect).ToArray();
            Assert.True(want.AsSpan().SequenceEqual(a[i].Data), $"tensor {e[i].Name} differs");
        }
    }

    [Fact]
    public void Random_model_save_load_round_trip_is_exact_in_f32()
    {
        var m = TransformerModel.CreateRandom(Llama, seed: 11);
        m.Save(_dir.Path);
        var back = TransformerModel.Load(_dir.Path);
        Assert.Equal(m.Config.EosTokenIds, back.Config.EosTokenIds);
        Assert.Equal(m.Config, back.Config with { EosTokenIds = m.Config.EosTokenIds });
        AssertSameWeights(m, back);
        Assert.Equal(m.ParameterCount, m.Config.ParameterCount());
    }

    [Fact]
    public void Tied_qwen2_model_has_biases_and_no_lm_head_after_round_trip()
    {
        var m = TransformerModel.CreateRandom(QwenTied, seed: 3);
        // Give the biases non-zero values so the round trip proves they were stored.
        foreach (var p in m.Parameters().Where(p => p.Name.EndsWith(".bias"))) for (int i = 0; i < p.Length; i++) p.Data[i] = i * 0.25f;
        m.Save(_dir.Path);
        using (var ck = SafetensorsCheckpoint.Open(_dir.Path))
        {
            Assert.False(ck.Contains("lm_head.weight"));
            Assert.True(ck.Contains("model.layers.0.self_attn.q_proj.bias"));
            Assert.False(ck.Contains("model.layers.0.self_attn.o_proj.bias"));
        }
        var back = TransformerModel.Load(_dir.Path);
        Assert.Null(back.LmHead);
        Assert.Same(back.Embed, back.Head);
        AssertSameWeights(m, back);
    }

    [Theory]
    [InlineData(SafetensorsDType.BF16, "bfloat16")]
    [InlineData(SafetensorsDType.F16, "float16")]
    public void Half_precision_save_stores_rounded_values_and_says_so_in_config(SafetensorsDType dtype, string torchDtype)
    {
        var m = TransformerModel.CreateRandom(Llama, seed: 5);
        m.Save(_dir.Path, dtype);
        Assert.Contains($"\"torch_dtype\": \"{torchDtype}\"", File.ReadAllText(Path.Combine(_dir.Path, "config.json")));
        using (var ck = SafetensorsCheckpoint.Open(_dir.Path))
            Assert.All(ck.Names, n => Assert.Equal(dtype, ck.GetInfo(n).DType));
        Func<float, float> round = dtype == SafetensorsDType.BF16
            ? x => BFloat16.ToSingle(BFloat16.FromSingle(x))
            : x => (float)(Half)x;
        AssertSameWeights(m, TransformerModel.Load(_dir.Path), round);
    }

    [Fact]
    public void Sharded_model_save_load_round_trip()
    {
        var m = TransformerModel.CreateRandom(Llama, seed: 9);
        long largest = m.Parameters().Max(p => (long)p.Length * 4);
        m.Save(_dir.Path, SafetensorsDType.F32, maxShardBytes: largest + 100);
        Assert.True(File.Exists(Path.Combine(_dir.Path, SafetensorsCheckpoint.IndexFileName)));
        Assert.False(File.Exists(Path.Combine(_dir.Path, SafetensorsCheckpoint.SingleFileName)));
        using (var ck = SafetensorsCheckpoint.Open(_dir.Path)) Assert.True(ck.Shards.Count > 2);
        AssertSameWeights(m, TransformerModel.Load(_dir.Path));
    }

    [Fact]
    public void Missing_tensor_is_reported_with_the_shape_config_implies()
    {
        TransformerModel.CreateRandom(Llama, 1).Save(_dir.Path);
        var w = new SafetensorsWriter();
        using (var r = SafetensorsReader.Open(Path.Combine(_dir.Path, "model.safetensors")))
            foreach (var n in r.Names.Where(n => n != "model.layers.1.mlp.up_proj.weight"))
                w.AddFloat(n, r.ReadFloat32(n), r.GetInfo(n).Shape);
        w.Save(Path.Combine(_dir.Path, "model.safetensors"));
        var e = Assert.Throws<SafetensorsFormatException>(() => TransformerModel.Load(_dir.Path));
        Assert.Equal("model.layers.1.mlp.up_proj.weight", e.Tensor);
        Assert.Contains("required tensor is missing (config.json implies shape [48, 32])", e.Message);
    }

    [Fact]
    public void Tensor_shape_disagreeing_with_config_is_reported()
    {
        TransformerModel.CreateRandom(Llama, 1).Save(_dir.Path);
        // Same weights, but config.json now claims a larger FFN.
        File.WriteAllText(Path.Combine(_dir.Path, "config.json"), (Llama with { IntermediateSize = 64 }).ToJson().ToJsonString());
        var e = Assert.Throws<SafetensorsFormatException>(() => TransformerModel.Load(_dir.Path));
        Assert.Equal("model.layers.0.mlp.gate_proj.weight", e.Tensor);
        Assert.EndsWith("model.safetensors", e.FilePath);
        Assert.Contains("shape [48, 32] does not match config.json, which implies [64, 32]", e.Message);
    }

    [Fact]
    public void Tensor_the_architecture_does_not_have_is_reported()
    {
        TransformerModel.CreateRandom(Llama, 1).Save(_dir.Path);
        // A model with 2 layers saved, config says 1 layer: layer 1's tensors are unexpected.
        File.WriteAllText(Path.Combine(_dir.Path, "config.json"), (Llama with { NumLayers = 1 }).ToJson().ToJsonString());
        var e = Assert.Throws<SafetensorsFormatException>(() => TransformerModel.Load(_dir.Path));
        Assert.StartsWith("model.layers.1.", e.Tensor);
        Assert.Contains("tensor is not part of a llama model with this config", e.Message);
    }

    [Fact]
    public void Model_folder_without_config_names_the_missing_file()
    {
        TransformerModel.CreateRandom(Llama, 1).Save(_dir.Path);
        File.Delete(Path.Combine(_dir.Path, "config.json"));
        var e = Assert.Throws<FileNotFoundException>(() => TransformerModel.Load(_dir.Path));
        Assert.Contains("config.json", e.Message);
    }

    [Theory]
    [InlineData("llama-mha", "llama", false, false)]
    [InlineData("qwen2-gqa-tied", "qwen2", true, true)]
    public void Golden_fixture_model_loads_with_bit_identical_weights(string fixture, string modelType, bool tied, bool qkvBias)
    {
        var dir = FixtureDir(fixture, "model");
        var m = TransformerModel.Load(dir);
        Assert.Equal(modelType, m.Config.ModelType);
        Assert.Equal(tied, m.LmHead is null);
        Assert.Equal(qkvBias, m.Layers[0].QBias is not null);
        Assert.Null(m.Layers[0].OBias);

        // Every tensor of the file is loaded, unchanged.
        using var r = SafetensorsReader.Open(Path.Combine(dir, "model.safetensors"));
        var byName = m.Parameters().ToDictionary(p => p.Name);
        Assert.Equal(r.Names.Order(StringComparer.Ordinal), byName.Keys.Order(StringComparer.Ordinal));
        foreach (var n in r.Names) Assert.True(r.ReadFloat32(n).AsSpan().SequenceEqual(byName[n].Data), n);

        // The reference gradients exist for exactly the model's tensors ("grad.<model key>").
        using var expected = SafetensorsReader.Open(Path.Combine(AppContext.BaseDirectory, "Fixtures", fixture, "expected.safetensors"));
        var gradKeys = expected.Names.Where(n => n.StartsWith("grad.model.", StringComparison.Ordinal) || n == "grad.lm_head.weight")
            .Select(n => n["grad.".Length..]).Order(StringComparer.Ordinal);
        Assert.Equal(byName.Keys.Order(StringComparer.Ordinal), gradKeys);
    }

    [Theory]
    [InlineData("llama-mha")]
    [InlineData("qwen2-gqa-tied")]
    public void Saving_a_golden_fixture_model_reproduces_the_python_written_file_byte_for_byte(string fixture)
    {
        var dir = FixtureDir(fixture, "model");
        TransformerModel.Load(dir).Save(_dir.Path);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "model.safetensors")), File.ReadAllBytes(Path.Combine(_dir.Path, "model.safetensors")));
        var original = ModelConfig.Load(dir);
        Assert.Equal(original, ModelConfig.Load(_dir.Path) with { EosTokenIds = original.EosTokenIds });
    }
}
