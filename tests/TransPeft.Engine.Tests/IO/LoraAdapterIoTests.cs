using System.Text.Json.Nodes;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Tests.IO;

/// <summary>PEFT adapter folders (adapter_config.json + adapter_model.safetensors): round trip and broken folders.</summary>
public sealed class LoraAdapterIoTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static readonly ModelConfig Model = new()
    {
        ModelType = "llama", HiddenSize = 32, IntermediateSize = 48, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 8, VocabSize = 50,
    };

    private static LoraAdapter Trained(LoraConfig config)
    {
        var a = LoraAdapter.Create(Model, config, seed: 4);
        // A fresh adapter has B = 0; fill it so the round trip checks real values.
        int k = 0;
        foreach (var m in a.Modules()) for (int i = 0; i < m.B.Length; i++) m.B.Data[i] = (k++ % 17 - 8) * 0.01f;
        return a;
    }

    [Fact]
    public void Adapter_round_trip_keeps_weights_config_and_metadata()
    {
        var config = new LoraConfig { R = 4, Alpha = 8, Dropout = 0.05, UseRsLora = true, TargetModules = ["q_proj", "v_proj", "down_proj"] };
        var a = Trained(config);
        a.Metadata["transpeft.mask_p"] = "0.2";
        a.BaseModelNameOrPath = "../base";
        a.Save(_dir.Path);

        var b = LoraAdapter.Load(_dir.Path, Model);
        Assert.Equal(config.R, b.Config.R);
        Assert.Equal(config.Alpha, b.Config.Alpha);
        Assert.Equal(config.Dropout, b.Config.Dropout);
        Assert.True(b.Config.UseRsLora);
        Assert.Equal(config.TargetModules, b.Config.TargetModules);
        Assert.Equal("../base", b.BaseModelNameOrPath);
        Assert.Equal("0.2", b.Metadata["transpeft.mask_p"]);
        Assert.Equal(6, b.ModuleCount); // 3 projections x 2 layers
        var ma = a.Modules().ToList();
        var mb = b.Modules().ToList();
        for (int i = 0; i < ma.Count; i++)
        {
            Assert.Equal((ma[i].Layer, ma[i].Projection), (mb[i].Layer, mb[i].Projection));
            Assert.Equal(ma[i].A.Data, mb[i].A.Data);
            Assert.Equal(ma[i].B.Data, mb[i].B.Data);
            Assert.Equal((float)(8 / Math.Sqrt(4)), mb[i].Scaling); // rsLoRA: alpha / sqrt(r)
        }
        using var r = SafetensorsReader.Open(Path.Combine(_dir.Path, LoraAdapter.WeightsFileName));
        Assert.Equal("pt", r.Metadata["format"]);
        Assert.Equal([4L, 48], r.GetInfo("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight").Shape); // [r, intermediate]
        Assert.Equal([32L, 4], r.GetInfo("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight").Shape);
    }

    [Fact]
    public void All_linear_is_saved_as_the_explicit_module_list()
    {
        Trained(new LoraConfig { R = 2, Alpha = 4, TargetModules = ["all-linear"] }).Save(_dir.Path);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(_dir.Path, LoraAdapter.ConfigFileName)))!;
        Assert.Equal(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            cfg["target_modules"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(14, LoraAdapter.Load(_dir.Path, Model).ModuleCount);
    }

    [Theory]
    [InlineData("llama-mha", 4, 8.0, 4)]
    [InlineData("qwen2-gqa-tied", 8, 16.0, 14)]
    public void Golden_fixture_adapter_loads(string fixture, int r, double alpha, int modules)
    {
        var model = ModelConfig.Load(TransformerModelIoTests.FixtureDir(fixture, "model"));
        var dir = TransformerModelIoTests.FixtureDir(fixture, "adapter");
        var a = LoraAdapter.Load(dir, model);
        Assert.Equal(r, a.Config.R);
        Assert.Equal(alpha, a.Config.Alpha);
        Assert.Equal(modules, a.ModuleCount);
        Assert.Equal("../model", a.BaseModelNameOrPath);
        using var file = SafetensorsReader.Open(Path.Combine(dir, LoraAdapter.WeightsFileName));
        foreach (var m in a.Modules())
        {
            Assert.Equal(file.ReadFloat32(m.PeftKeyA), m.A.Data);
            Assert.Equal(file.ReadFloat32(m.PeftKeyB), m.B.Data);
            Assert.Equal((float)(alpha / r), m.Scaling);
        }
        Assert.Equal(file.Names.Count, 2 * a.ModuleCount);
    }

    // ---- broken adapter folders

    private void SaveValid() => Trained(new LoraConfig { R = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] }).Save(_dir.Path);

    private string WeightsPath => Path.Combine(_dir.Path, LoraAdapter.WeightsFileName);
    private string ConfigPath => Path.Combine(_dir.Path, LoraAdapter.ConfigFileName);

    /// <summary>Rewrites the weights file through <paramref name="edit"/>(name, shape) -> (name, shape, values) or null to drop.</summary>
    private void RewriteWeights(Func<string, float[], long[], (string, float[], long[])?> edit, params (string, float[], long[])[] extra)
    {
        var w = new SafetensorsWriter().AddMetadata("format", "pt");
        using (var r = SafetensorsReader.Open(WeightsPath))
            foreach (var n in r.Names)
                if (edit(n, r.ReadFloat32(n), r.GetInfo(n).Shape) is var (nn, v, s)) w.AddFloat(nn, v, s);
        foreach (var (n, v, s) in extra) w.AddFloat(n, v, s);
        w.Save(WeightsPath);
    }

    private const string QA0 = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    private const string QB0 = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

    [Fact]
    public void A_matrix_not_matching_the_base_in_features_is_rejected()
    {
        SaveValid();
        RewriteWeights((n, v, s) => n == QA0 ? (n, new float[4 * 16], [4, 16]) : (n, v, s));
        var e = Assert.Throws<SafetensorsFormatException>(() => LoraAdapter.Load(_dir.Path, Model));
        Assert.Equal(QA0, e.Tensor);
        Assert.Contains(LoraAdapter.WeightsFileName, e.Message);
        Assert.Contains("shape [4, 16] does not fit the base: expected [r, 32]", e.Message);
    }

    [Fact]
    public void B_matrix_not_matching_the_base_out_features_is_rejected()
    {
        SaveValid();
        RewriteWeights((n, v, s) => n == QB0 ? (n, new float[16 * 4], [16, 4]) : (n, v, s));
        var e = Assert.Throws<SafetensorsFormatException>(() => LoraAdapter.Load(_dir.Path, Model));
        Assert.Equal(QB0, e.Tensor);
        Assert.Contains("shape [16, 4] does not fit the base: expected [32, 4]", e.Message);
    }

    [Fact]
    public void Rank_differing_from_config_is_rejected()
    {
        SaveValid();
        RewriteWeights((n, v, s) => n == QA0 ? (n, new float[2 * 32], [2, 32]) : n == QB0 ? (n, new float[32 * 2], [32, 2]) : (n, v, s));
        var e = Assert.Throws<SafetensorsFormatException>(() => LoraAdapter.Load(_dir.Path, Model));
        Assert.Equal(QA0, e.Tensor);
        Assert.Contains("rank 2 differs from r = 4 in adapter_config.json", e.Message);
    }

    [Fact]
    public void Missing_half_of_a_pair_is_rejected()
    {
        SaveValid();
        RewriteWeights((n, v, s) => n == QB0 ? null : (n, v, s));
        var e = Assert.Throws<SafetensorsFormatException>(() => LoraAdapter.Load(_dir.Path, Model));
        Assert.Equal(QB0, e.Tensor);
        Assert.Contains("missing: lora_A and lora_B must come in pairs", e.Message);
    }

    [Fact]
    public void Stray_tensor_is_rejected()
    {
        SaveValid();
        RewriteWeights((n, v, s) => (n, v, s), ("base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight", new float[4 * 32], [4, 32]));
        var e = Assert.Throws<SafetensorsFormatException>(() => LoraAdapter.Load(_dir.Path, Model));
        Assert.Equal("base_model.model.model.layers.5.self_attn.q_proj.lora_A.weight", e.Tensor);
        Assert.Contains("tensor names no LoRA module of this 2-layer llama base", e.Message);
    }

    [Fact]
    public void Adapter_without_lora_tensors_is_rejected()
    {
        SaveValid();
        RewriteWeights((n, v, s) => null);
        var e = Assert.Throws<SafetensorsFormatException>(() => LoraAdapter.Load(_dir.Path, Model));
        Assert.Contains("adapter holds no LoRA tensors", e.Message);
    }

    [Fact]
    public void Missing_files_are_named()
    {
        SaveValid();
        File.Delete(WeightsPath);
        Assert.Contains(LoraAdapter.WeightsFileName, Assert.Throws<FileNotFoundException>(() => LoraAdapter.Load(_dir.Path, Model)).Message);
        File.Delete(ConfigPath);
        Assert.Contains(LoraAdapter.ConfigFileName, Assert.Throws<FileNotFoundException>(() => LoraAdapter.Load(_dir.Path, Model)).Message);
    }

    public static TheoryData<string, string, string> BrokenConfigs => new()
    {
        { "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]", "(file)", "well-formed JSON" },
        { "[4]", "(file)", "a JSON object" },
        { "{\"peft_type\": \"IA3\", \"r\": 4, \"target_modules\": [\"q_proj\"]}", "peft_type", "\"LORA\", got \"IA3\"" },
        { "{\"peft_type\": 7, \"r\": 4, \"target_modules\": [\"q_proj\"]}", "peft_type", "a string, got 7" },
        { "{\"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "r", "the field is missing" },
        { "{\"r\": 0, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "r", "a positive integer, got 0" },
        { "{\"r\": 4, \"lora_alpha\": \"8\", \"target_modules\": [\"q_proj\"]}", "lora_alpha", "a number, got \"8\"" },
        { "{\"r\": 4, \"lora_dropout\": 1.5, \"target_modules\": [\"q_proj\"]}", "lora_dropout", "a probability in [0, 1), got 1.5" },
        { "{\"r\": 4, \"use_rslora\": \"yes\", \"target_modules\": [\"q_proj\"]}", "use_rslora", "true or false" },
        { "{\"r\": 4, \"use_dora\": true, \"target_modules\": [\"q_proj\"]}", "use_dora", "DoRA adapters are not supported" },
        { "{\"r\": 4, \"fan_in_fan_out\": true, \"target_modules\": [\"q_proj\"]}", "fan_in_fan_out", "weights stored [out, in]" },
        { "{\"r\": 4, \"bias\": \"all\", \"target_modules\": [\"q_proj\"]}", "bias", "LoRA biases are not supported" },
        { "{\"r\": 4, \"rank_pattern\": {\"q_proj\": 8}, \"target_modules\": [\"q_proj\"]}", "rank_pattern", "per-module rank/alpha overrides are not supported" },
        { "{\"r\": 4, \"alpha_pattern\": {\"q_proj\": 2}, \"target_modules\": [\"q_proj\"]}", "alpha_pattern", "per-module rank/alpha overrides are not supported" },
        { "{\"r\": 4}", "target_modules", "the field is missing" },
        { "{\"r\": 4, \"target_modules\": [\"q_proj\", 3]}", "target_modules", "module names as strings, got 3" },
        { "{\"r\": 4, \"target_modules\": {\"q\": 1}}", "target_modules", "a list of module names or a regex string, got" },
        { "{\"r\": 4, \"target_modules\": \"(q_proj\"}", "target_modules", "a valid regular expression" },
        { "{\"r\": 4, \"r\": 8, \"target_modules\": [\"q_proj\"]}", "(file)", "without repeated keys" },
    };

    [Theory]
    [MemberData(nameof(BrokenConfigs))]
    public void Broken_adapter_config_is_rejected_naming_file_field_and_expectation(string json, string field, string expected)
    {
        SaveValid();
        File.WriteAllText(ConfigPath, json);
        var e = Assert.Throws<ModelConfigException>(() => LoraAdapter.Load(_dir.Path, Model));
        Assert.Contains(ConfigPath, e.Message);
        Assert.Equal(field, e.Field);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Unknown_adapter_config_fields_are_tolerated()
    {
        SaveValid();
        var o = JsonNode.Parse(File.ReadAllText(ConfigPath))!.AsObject();
        o["megatron_config"] = null;
        o["eva_config"] = new JsonObject { ["rho"] = 2 };
        o["some_future_field"] = "x";
        File.WriteAllText(ConfigPath, o.ToJsonString());
        Assert.Equal(4, LoraAdapter.Load(_dir.Path, Model).ModuleCount);
    }
}
