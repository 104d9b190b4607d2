using System.Text.Json.Nodes;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.TransPeft;

public class TransPeftSettingsTests
{
    /// <summary>Every field of PEFT's LoraConfig (peft 0.13 - 0.17): PEFT refuses an adapter_config.json with any other key.</summary>
    internal static readonly HashSet<string> PeftLoraConfigKeys =
    [
        "alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "corda_config", "eva_config", "exclude_modules",
        "fan_in_fan_out", "inference_mode", "init_lora_weights", "layer_replication", "layers_pattern", "layers_to_transform",
        "loftq_config", "lora_alpha", "lora_bias", "lora_dropout", "megatron_config", "megatron_core", "modules_to_save",
        "peft_type", "r", "rank_pattern", "revision", "target_modules", "task_type", "use_dora", "use_rslora",
        "trainable_token_indices", "target_parameters", "runtime_config", "peft_version",
    ];

    [Fact]
    public void SettingsRoundTripThroughTheSafetensorsMetadata()
    {
        var dir = Directory.CreateTempSubdirectory("tpeft-settings-");
        try
        {
            var config = TinyModels.Config();
            var adapter = TinyModels.TrainedAdapter(config);
            var settings = new TransPeftSettings { PMask = 0.2, PDrop = 0.1, Seed = 0xDEADBEEF_12345678UL };
            settings.WriteTo(adapter);
            adapter.Save(dir.FullName);

            var loaded = LoraAdapter.Load(dir.FullName, config);
            Assert.Equal(settings, TransPeftSettings.ReadFrom(loaded));
            Assert.Equal(settings, TransPeftSettings.ReadFrom(dir.FullName));
            Assert.Equal(TransPeftSettings.CurrentVersion, TransPeftSettings.ReadFrom(loaded)!.Version);
            Assert.False(settings.IsPlainLora);

            // PEFT compatibility: the settings live only in the safetensors header; adapter_config.json holds PEFT's keys only.
            var cfg = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(dir.FullName, LoraAdapter.ConfigFileName)))!;
            var unknown = cfg.Select(kv => kv.Key).Where(k => !PeftLoraConfigKeys.Contains(k)).ToList();
            Assert.True(unknown.Count == 0, $"adapter_config.json has keys PEFT does not know: {string.Join(", ", unknown)}");
            Assert.DoesNotContain("p_mask", File.ReadAllText(Path.Combine(dir.FullName, LoraAdapter.ConfigFileName)));
        }
        finally { dir.Delete(true); }
    }

    [Fact]
    public void AdapterWithoutSettingsIsPlainLora()
    {
        var dir = Directory.CreateTempSubdirectory("tpeft-settings-");
        try
        {
            var config = TinyModels.Config();
            TinyModels.TrainedAdapter(config).Save(dir.FullName);
            Assert.Null(TransPeftSettings.ReadFrom(dir.FullName));
            Assert.Null(TransPeftSettings.ReadFrom(LoraAdapter.Load(dir.FullName, config)));
        }
        finally { dir.Delete(true); }
    }

    [Theory]
    [InlineData("{\"method\":\"trans-peft\",\"version\":1,\"p_mask\":1.5,\"p_drop\":0}", "trans_peft.p_mask")]
    [InlineData("{\"method\":\"trans-peft\",\"version\":1,\"p_mask\":0,\"p_drop\":\"x\"}", "trans_peft.p_drop")]
    [InlineData("{\"method\":\"other\",\"version\":1}", "trans_peft.method")]
    [InlineData("{\"method\":\"trans-peft\"}", "trans_peft.version")]
    [InlineData("[1,2]", "trans_peft")]
    public void MalformedSettingsNameTheField(string json, string field)
    {
        var e = Assert.Throws<ModelConfigException>(() => TransPeftSettings.Parse(json, "adapter_model.safetensors"));
        Assert.Equal(field, e.Field);
        Assert.Contains("adapter_model.safetensors", e.Message);
    }
}
