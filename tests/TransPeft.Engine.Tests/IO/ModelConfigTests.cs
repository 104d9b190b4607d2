using TransPeft.Engine.Model;

namespace TransPeft.Engine.Tests.IO;

/// <summary>config.json of real architectures (field sets as transformers writes them), and broken ones.</summary>
public sealed class ModelConfigTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private ModelConfig Parse(string json)
    {
        var path = _dir.File("config.json");
        File.WriteAllText(path, json);
        return ModelConfig.Load(_dir.Path);
    }

    private ModelConfigException Reject(string json)
    {
        var path = _dir.File("config.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(path));
        Assert.Contains(path, e.Message);
        return e;
    }

    // Llama-3.2-1B's config.json (values as published).
    private const string Llama32 = """
        {
          "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
          "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
          "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
          "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
          "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
          "pretraining_tp": 1, "rms_norm_eps": 1e-05,
          "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                           "original_max_position_embeddings": 8192, "rope_type": "llama3"},
          "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
          "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
        }
        """;

    [Fact]
    public void Llama3_with_rope_scaling()
    {
        var c = Parse(Llama32);
        Assert.Equal("llama", c.ModelType);
        Assert.Equal((2048, 8192, 16, 32, 8, 64, 128256), (c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize));
        Assert.Equal(1e-5, c.RmsNormEps);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling(32.0, 1.0, 4.0, 8192), c.RopeScaling);
        Assert.True(c.TieWordEmbeddings);
        Assert.False(c.QkvBias);
        Assert.False(c.OBias);
        Assert.Equal(128000, c.BosTokenId);
        Assert.Equal([128001], c.EosTokenIds);
        Assert.Equal(131072, c.MaxPositionEmbeddings);
        Assert.Null(c.SlidingWindow);
        // Llama-3.2-1B has 1.236B parameters with tied embeddings.
        Assert.Equal(1_235_814_400, c.ParameterCount());
    }

    [Fact]
    public void Qwen2_has_qkv_bias_without_attention_bias_field_and_list_of_eos()
    {
        // Qwen2.5-0.5B's config.json: no attention_bias field (Qwen2 always has q/k/v bias), no head_dim.
        var c = Parse("""
            {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
             "eos_token_id": [151643, 151645], "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
             "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
             "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
             "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
             "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true,
             "use_sliding_window": false, "vocab_size": 151936}
            """);
        Assert.Equal("qwen2", c.ModelType);
        Assert.Equal(64, c.HeadDim); // 896 / 14
        Assert.True(c.QkvBias);
        Assert.False(c.OBias);
        Assert.Equal([151643, 151645], c.EosTokenIds);
        Assert.Null(c.SlidingWindow); // qwen2's sliding_window is inert while use_sliding_window is false
        // Qwen2.5-0.5B: 494M parameters.
        Assert.Equal(494_032_768, c.ParameterCount());
    }

    [Fact]
    public void Mistral_keeps_its_sliding_window_and_null_head_dim()
    {
        var c = Parse("""
            {"architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "head_dim": null,
             "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768,
             "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
             "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
             "torch_dtype": "bfloat16", "vocab_size": 32000}
            """);
        Assert.Equal("mistral", c.ModelType);
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(4096, c.SlidingWindow);
        Assert.False(c.QkvBias);
        // Writing and reading back keeps the window.
        c.Save(_dir.File("out.json"));
        Assert.Equal(c, ModelConfig.Load(_dir.File("out.json")) with { EosTokenIds = c.EosTokenIds });
    }

    [Fact]
    public void Rope_parameters_form_of_newer_transformers()
    {
        var c = Parse("""
            {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
             "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
            """);
        Assert.Equal(500000.0, c.RopeTheta);
        Assert.Equal(new RopeScaling(8.0, 1.0, 4.0, 8192), c.RopeScaling);

        var d = Parse("""
            {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "vocab_size": 100, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}
            """);
        Assert.Equal(1000000.0, d.RopeTheta);
        Assert.Null(d.RopeScaling);
        Assert.Equal(4, d.NumKvHeads); // defaults to num_attention_heads
    }

    [Fact]
    public void Config_written_by_ToJson_reads_back_equal()
    {
        var c = Parse(Llama32);
        c.Save(_dir.File("again.json"));
        var back = ModelConfig.Load(_dir.File("again.json"));
        Assert.Equal(c.EosTokenIds, back.EosTokenIds);
        Assert.Equal(c, back with { EosTokenIds = c.EosTokenIds }); // records compare arrays by reference
    }

    private const string Base = "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100";

    public static TheoryData<string, string, string> BrokenConfigs => new()
    {
        { "{\"model_type\": \"llama\", " + Base, "(file)", "well-formed JSON" },
        { "[1, 2]", "(file)", "a JSON object" },
        { "{\"model_type\": \"gpt2\", " + Base + "}", "model_type", "'gpt2' is not a supported architecture" },
        { "{" + Base + "}", "model_type", "a string naming the architecture" },
        { "{\"model_type\": \"llama\", \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100}", "hidden_size", "an integer (the field is missing)" },
        { "{\"model_type\": \"llama\", \"hidden_size\": \"64\", \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100}", "hidden_size", "an integer, got \"64\"" },
        { "{\"model_type\": \"llama\", " + Base + ", \"num_key_value_heads\": 3}", "num_key_value_heads", "a positive divisor of num_attention_heads (4), got 3" },
        { "{\"model_type\": \"llama\", \"hidden_size\": 66, \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 100}", "head_dim", "hidden_size 66 is not divisible by num_attention_heads 4" },
        { "{\"model_type\": \"llama\", " + Base + ", \"head_dim\": 15}", "head_dim", "a positive even integer" },
        { "{\"model_type\": \"llama\", " + Base + ", \"hidden_act\": \"gelu\"}", "hidden_act", "'gelu' is not supported" },
        { "{\"model_type\": \"llama\", " + Base + ", \"mlp_bias\": true}", "mlp_bias", "MLP biases are not supported" },
        { "{\"model_type\": \"llama\", " + Base + ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}}", "rope_scaling.rope_type", "'yarn' scaling is not supported" },
        { "{\"model_type\": \"llama\", " + Base + ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}}", "rope_scaling.high_freq_factor", "a number" },
        { "{\"model_type\": \"llama\", " + Base + ", \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}}", "rope_scaling.high_freq_factor", "greater than low_freq_factor" },
        { "{\"model_type\": \"llama\", " + Base + ", \"rope_scaling\": \"llama3\"}", "rope_scaling", "null or an object" },
        { "{\"model_type\": \"llama\", " + Base + ", \"rope_parameters\": 5}", "rope_parameters", "an object with rope_type" },
        { "{\"model_type\": \"llama\", " + Base + ", \"eos_token_id\": 100}", "eos_token_id", "ids inside the vocabulary [0, 100), got 100" },
        { "{\"model_type\": \"llama\", " + Base + ", \"eos_token_id\": \"</s>\"}", "eos_token_id", "an integer or a list of integers" },
        { "{\"model_type\": \"llama\", " + Base + ", \"tie_word_embeddings\": \"yes\"}", "tie_word_embeddings", "true or false" },
        { "{\"model_type\": \"llama\", " + Base + ", \"rms_norm_eps\": 0}", "rms_norm_eps", "a positive number" },
        { "{\"model_type\": \"qwen2\", " + Base + ", \"use_sliding_window\": true}", "use_sliding_window", "sliding-window attention is not supported" },
        { "{\"model_type\": \"llama\", " + Base + ", \"hidden_size\": 128}", "(file)", "without repeated keys" },
    };

    [Theory]
    [MemberData(nameof(BrokenConfigs))]
    public void Broken_config_is_rejected_naming_file_field_and_expectation(string json, string field, string expected)
    {
        var e = Reject(json);
        Assert.Equal(field, e.Field);
        Assert.Contains($"field '{field}'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Missing_config_names_the_path()
    {
        var e = Assert.Throws<FileNotFoundException>(() => ModelConfig.Load(_dir.Path));
        Assert.Contains(Path.Combine(_dir.Path, "config.json"), e.Message);
    }
}
