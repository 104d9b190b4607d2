using System.Text.Json.Nodes;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Training;

public class TrainingOptionsTests
{
    private static string Config(string json)
    {
        var p = Path.Combine(TempDirs.Create("tpeft-cfg"), "train.json");
        File.WriteAllText(p, json);
        return p;
    }

    private static KeyValuePair<string, string> Flag(string k, string v) => new(k, v);

    [Fact]
    public void Defaults_are_valid()
    {
        var o = TrainingOptionsJson.Load(null);
        Assert.Equal(new TrainingOptions().LearningRate, o.LearningRate);
        Assert.Equal(TrainingMethod.Lora, o.Method);
    }

    [Fact]
    public void Config_file_sets_fields_and_flags_override_them()
    {
        var path = Config("""
            {
              // comments and trailing commas are tolerated
              "method": "lora", "lora_r": 64, "lora_alpha": 128, "lora_dropout": 0.05,
              "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj"], "use_rslora": true, "lora_init": "gaussian",
              "optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "beta2": 0.95,
              "schedule": "cosine", "warmup_ratio": 0.03, "epochs": 3,
              "batch_size": 4, "grad_accum": 4, "max_grad_norm": 1.0, "seq_len": 1024,
              "data": "train.jsonl", "data_format": "alpaca", "val_fraction": 0.05,
              "p_drop": 0.1, "p_mask": 0.0, "seed": 7, "eval_every": 100, "save_every": 200, "keep_checkpoints": 2,
            }
            """);
        var o = TrainingOptionsJson.Load(path, [Flag("--lr", "1e-4"), Flag("lora-r", "16"), Flag("lora_targets", "q_proj, v_proj"), Flag("--pack", "true")]);
        Assert.Equal(1e-4, o.LearningRate);
        Assert.Equal(16, o.LoraR);
        Assert.Equal(["q_proj", "v_proj"], o.LoraTargets);
        Assert.Equal(128, o.LoraAlpha);
        Assert.True(o.UseRsLora);
        Assert.Equal(LoraInit.Gaussian, o.LoraInit);
        Assert.Equal(0.95, o.Beta2);
        Assert.Equal(0.03, o.WarmupRatio);
        Assert.Equal(3.0, o.Epochs);
        Assert.Null(o.Steps);
        Assert.Equal(DatasetFormat.Alpaca, o.DataFormat);
        Assert.Equal(0.1, o.PDrop);
        Assert.True(o.Pack);
        Assert.Equal(16, o.GlobalBatch);
        var lora = o.ToLoraConfig();
        Assert.Equal(128 / Math.Sqrt(16), lora.Scaling, 12);
    }

    [Fact]
    public void Options_round_trip_through_json()
    {
        var o = new TrainingOptions { LoraTargets = ["all-linear"], Steps = 5, WarmupSteps = 1, PDrop = 0.15, Optimizer = OptimizerKind.Sgd, Momentum = 0.9, DataFormat = DatasetFormat.Tokenized, Pack = false };
        var json = TrainingOptionsJson.ToJson(o);
        var back = TrainingOptionsJson.FromJson((JsonObject)JsonNode.Parse(json.ToJsonString())!, "test");
        Assert.Equal(json.ToJsonString(), TrainingOptionsJson.ToJson(back).ToJsonString());
        Assert.Empty(TrainingOptionsJson.TrajectoryDifferences(o, back));
        Assert.Equal(TrainingOptionsJson.FieldNames.Count, json.Count);
    }

    [Fact]
    public void Recompute_comes_from_the_config_or_the_flag_and_may_change_on_resume()
    {
        Assert.False(new TrainingOptions().Recompute);
        Assert.True(TrainingOptionsJson.Load(Config("""{"recompute": true}""")).Recompute);
        Assert.True(TrainingOptionsJson.Load(null, [new("--recompute", "true")]).Recompute);
        // Identical gradients: a run checkpointed without it resumes with it.
        Assert.Empty(TrainingOptionsJson.TrajectoryDifferences(new TrainingOptions(), new TrainingOptions { Recompute = true }));
        // CUDA graphs give identical steps too (GraphReplayGivesTheEagerResults): off by default, free to change on resume.
        Assert.False(new TrainingOptions().CudaGraphs);
        Assert.True(TrainingOptionsJson.Load(Config("""{"cuda_graphs": true}""")).CudaGraphs);
        Assert.True(TrainingOptionsJson.Load(null, [new("--cuda-graphs", "true")]).CudaGraphs);
        Assert.Empty(TrainingOptionsJson.TrajectoryDifferences(new TrainingOptions(), new TrainingOptions { CudaGraphs = true }));
    }

    [Theory]
    [InlineData("""{"lr": -1}""", "lr", "a positive number")]
    [InlineData("""{"lr": "fast"}""", "lr", "a positive number")]
    [InlineData("""{"lora_r": 0}""", "lora_r", "a positive integer")]
    [InlineData("""{"lora_r": 8.5}""", "lora_r", "a positive integer")]
    [InlineData("""{"lora_dropout": 1.0}""", "lora_dropout", "[0, 1)")]
    [InlineData("""{"lora_targets": []}""", "lora_targets", "at least one module name")]
    [InlineData("""{"lora_targets": ["q_proj", "v_prj"]}""", "lora_targets", "module names ending in q_proj")]
    [InlineData("""{"lora_target_regex": "("}""", "lora_target_regex", "a valid regular expression")]
    [InlineData("""{"optimizer": "adam"}""", "optimizer", "one of adamw, sgd")]
    [InlineData("""{"schedule": "exponential"}""", "schedule", "one of constant, linear, cosine")]
    [InlineData("""{"steps": 10, "epochs": 2}""", "steps", "null when epochs is set")]
    [InlineData("""{"warmup_steps": 5, "warmup_ratio": 0.1}""", "warmup_steps", "null when warmup_ratio is set")]
    [InlineData("""{"steps": 10, "warmup_steps": 20}""", "warmup_steps", "at most steps = 10")]
    [InlineData("""{"batch_size": 0}""", "batch_size", "a positive integer")]
    [InlineData("""{"grad_accum": -2}""", "grad_accum", "a positive integer")]
    [InlineData("""{"seq_len": 1}""", "seq_len", "an integer >= 2")]
    [InlineData("""{"p_mask": 1.5}""", "p_mask", "a probability in [0, 1)")]
    [InlineData("""{"p_drop": -0.1}""", "p_drop", "a probability in [0, 1)")]
    [InlineData("""{"beta2": 1}""", "beta2", "[0, 1)")]
    [InlineData("""{"momentum": 0.9}""", "momentum", "0 unless optimizer = sgd")]
    [InlineData("""{"method": "full", "adapter_init": "x"}""", "adapter_init", "null for method = full")]
    [InlineData("""{"val_fraction": 0.1, "val_data": "v.jsonl"}""", "val_fraction", "0 when val_data is given")]
    [InlineData("""{"data_format": "csv"}""", "data_format", "one of auto, text, text-records, prompt-completion, alpaca, tokenized")]
    [InlineData("""{"use_rslora": "yes"}""", "use_rslora", "true or false")]
    [InlineData("""{"keep_checkpoints": -1}""", "keep_checkpoints", "an integer >= 0")]
    [InlineData("""{"recompute": 1}""", "recompute", "true or false")]
    public void Bad_config_values_name_the_file_the_field_and_the_expected_value(string json, string field, string expected)
    {
        var path = Config(json);
        var e = Assert.Throws<TrainingConfigException>(() => TrainingOptionsJson.Load(path));
        Assert.Equal(field, e.Field);
        Assert.Equal(path, e.ConfigSource);
        Assert.Contains($"{path}: field '{field}': expected", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_bad_flag_is_blamed_on_the_flag_not_the_file()
    {
        var path = Config("""{"lr": 1e-4, "batch_size": 8}""");
        var e = Assert.Throws<TrainingConfigException>(() => TrainingOptionsJson.Load(path, [Flag("--batch-size", "0")]));
        Assert.Equal("--batch-size", e.ConfigSource);
        Assert.Equal("--batch-size: field 'batch_size': expected a positive integer (examples per micro-batch), at most 65536, got 0", e.Message);
        var e2 = Assert.Throws<TrainingConfigException>(() => TrainingOptionsJson.Load(path, [Flag("--lr", "abc")]));
        Assert.Equal("--lr: field 'lr': expected a positive number, got \"abc\"", e2.Message);
    }

    [Fact]
    public void Unknown_fields_suggest_the_nearest_known_one()
    {
        var path = Config("""{"learning_rate": 1e-4}""");
        var e = Assert.Throws<TrainingConfigException>(() => TrainingOptionsJson.Load(path));
        Assert.Equal("learning_rate", e.Field);
        Assert.Contains("did you mean", e.Message);
        var e2 = Assert.Throws<TrainingConfigException>(() => TrainingOptionsJson.Load(null, [Flag("--lora-rank", "8")]));
        Assert.Contains("did you mean 'lora_r'", e2.Message);
    }

    [Fact]
    public void Malformed_config_json_is_reported_with_the_file()
    {
        var path = Config("""{"lr": 1e-4,, }""");
        var e = Assert.Throws<TrainingConfigException>(() => TrainingOptionsJson.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("well-formed JSON", e.Message);
        Assert.Throws<FileNotFoundException>(() => TrainingOptionsJson.Load(path + ".missing"));
    }

    [Fact]
    public void Flags_can_clear_nullable_fields_and_switch_steps_for_epochs()
    {
        var path = Config("""{"epochs": 2, "warmup_ratio": 0.1}""");
        var o = TrainingOptionsJson.Load(path, [Flag("epochs", "none"), Flag("steps", "100"), Flag("warmup_ratio", "null"), Flag("warmup_steps", "10")]);
        Assert.Null(o.Epochs);
        Assert.Equal(100, o.Steps);
        Assert.Equal(10, o.WarmupSteps);
        Assert.Equal(100, o.ResolveTotalSteps(5));
    }
}
