using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Model;

/// <summary>
/// The architecture of a Llama-family decoder, as read from (and written to) a Hugging Face
/// <c>config.json</c> of model_type llama, qwen2 or mistral.
/// </summary>
public sealed record ModelConfig
{
    public static readonly string[] SupportedModelTypes = ["llama", "qwen2", "mistral"];

    public string ModelType { get; init; } = "llama";
    public int HiddenSize { get; init; }
    public int IntermediateSize { get; init; }
    public int NumLayers { get; init; }
    public int NumHeads { get; init; }
    public int NumKvHeads { get; init; }
    public int HeadDim { get; init; }
    public int VocabSize { get; init; }
    public double RmsNormEps { get; init; } = 1e-5;
    public double RopeTheta { get; init; } = 10000.0;
    public RopeScaling? RopeScaling { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>q/k/v (and, for llama/mistral, o) projections carry a bias. Qwen2 always has q/k/v bias.</summary>
    public bool AttentionBias { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>Mistral's sliding attention window (each token attends to at most this many previous
    /// positions, itself included); null means full causal attention. Only mistral configs carry one.</summary>
    public int? SlidingWindow { get; init; }
    public int? BosTokenId { get; init; }
    public int[] EosTokenIds { get; init; } = [];

    public int QDim => NumHeads * HeadDim;
    public int KvDim => NumKvHeads * HeadDim;
    /// <summary>q, k and v carry a bias (qwen2 always; llama/mistral when attention_bias).</summary>
    public bool QkvBias => ModelType == "qwen2" || AttentionBias;
    /// <summary>o_proj carries a bias (llama/mistral with attention_bias only).</summary>
    public bool OBias => ModelType != "qwen2" && AttentionBias;

    /// <summary>Checks the dimensions agree; throws naming the field and what was expected.</summary>
    public void Validate(string source)
    {
        void Require(bool ok, string field, string expected)
        {
            if (!ok) throw new ModelConfigException(source, field, expected);
        }
        Require(SupportedModelTypes.Contains(ModelType), "model_type", $"one of {string.Join(", ", SupportedModelTypes)}, got '{ModelType}'");
        Require(HiddenSize > 0, "hidden_size", $"a positive integer, got {HiddenSize}");
        Require(IntermediateSize > 0, "intermediate_size", $"a positive integer, got {IntermediateSize}");
        Require(NumLayers > 0, "num_hidden_layers", $"a positive integer, got {NumLayers}");
        Require(NumHeads > 0, "num_attention_heads", $"a positive integer, got {NumHeads}");
        Require(NumKvHeads > 0 && NumHeads % NumKvHeads == 0, "num_key_value_heads",
            $"a positive divisor of num_attention_heads ({NumHeads}), got {NumKvHeads}");
        Require(HeadDim > 0 && HeadDim % 2 == 0, "head_dim", $"a positive even integer (RoPE rotates pairs), got {HeadDim}");
        Require(VocabSize > 0, "vocab_size", $"a positive integer, got {VocabSize}");
        Require(RmsNormEps > 0, "rms_norm_eps", $"a positive number, got {RmsNormEps}");
        Require(RopeTheta > 0, "rope_theta", $"a positive number, got {RopeTheta}");
        Require(MaxPositionEmbeddings > 0, "max_position_embeddings", $"a positive integer, got {MaxPositionEmbeddings}");
        if (RopeScaling is { } rs)
        {
            Require(rs.Factor > 0, "rope_scaling.factor", $"a positive number, got {rs.Factor}");
            Require(rs.LowFreqFactor > 0 && rs.HighFreqFactor > rs.LowFreqFactor, "rope_scaling.high_freq_factor",
                $"greater than low_freq_factor ({rs.LowFreqFactor}), got {rs.HighFreqFactor}");
            Require(rs.OriginalMaxPositionEmbeddings > 0, "rope_scaling.original_max_position_embeddings", "a positive integer");
        }
        if (SlidingWindow is int sw)
        {
            Require(ModelType == "mistral", "sliding_window", $"null for {ModelType} (only mistral's all-layer window is modelled)");
            Require(sw > 0, "sliding_window", $"null or a positive integer, got {sw}");
        }
        // Every tensor is one .NET array: its element count, computed in 64 bits, must fit one.
        void Fits(string field, string product, long elements) =>
            Require(elements <= Array.MaxLength, field, $"a size whose tensors fit in memory: {product} = {elements:N0} elements, over the limit of {Array.MaxLength:N0} per tensor");
        Fits("num_attention_heads", "num_attention_heads x head_dim", (long)NumHeads * HeadDim);
        Fits("vocab_size", "vocab_size x hidden_size", (long)VocabSize * HiddenSize);
        Fits("intermediate_size", "intermediate_size x hidden_size", (long)IntermediateSize * HiddenSize);
        Fits("num_attention_heads", "num_attention_heads x head_dim x hidden_size", (long)NumHeads * HeadDim * HiddenSize);
        Fits("num_key_value_heads", "num_key_value_heads x head_dim x hidden_size", (long)NumKvHeads * HeadDim * HiddenSize);
        foreach (var e in EosTokenIds) Require(e >= 0 && e < VocabSize, "eos_token_id", $"ids inside the vocabulary [0, {VocabSize}), got {e}");
        if (BosTokenId is int b) Require(b >= 0 && b < VocabSize, "bos_token_id", $"an id inside the vocabulary [0, {VocabSize}), got {b}");
    }

    public static ModelConfig Load(string path)
    {
        if (Directory.Exists(path)) path = System.IO.Path.Combine(path, "config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: model config not found", path);
        return FromJson(JsonInput.ReadConfigObject(path), path);
    }

    public static ModelConfig FromJson(JsonObject o, string source)
    {
        string modelType = GetString(o, "model_type", source) ?? throw new ModelConfigException(source, "model_type", "a string naming the architecture (llama, qwen2 or mistral)");
        if (!SupportedModelTypes.Contains(modelType))
            throw new ModelConfigException(source, "model_type", $"one of {string.Join(", ", SupportedModelTypes)}; '{modelType}' is not a supported architecture");
        int hidden = RequireInt(o, "hidden_size", source);
        int heads = RequireInt(o, "num_attention_heads", source);
        int kvHeads = GetInt(o, "num_key_value_heads", source) ?? heads;
        int headDim = GetInt(o, "head_dim", source) ?? (heads > 0 && hidden % heads == 0 ? hidden / heads
            : throw new ModelConfigException(source, "head_dim", $"present, since hidden_size {hidden} is not divisible by num_attention_heads {heads}"));

        double ropeTheta = GetDouble(o, "rope_theta", source) ?? 10000.0;
        JsonObject? scalingNode = o["rope_scaling"] switch
        {
            null => null,
            JsonObject so => so,
            var n => throw new ModelConfigException(source, "rope_scaling", $"null or an object with rope_type, got {n.ToJsonString()}"),
        };
        if (o["rope_parameters"] is { } rpNode)
        {
            if (rpNode is not JsonObject rp)
                throw new ModelConfigException(source, "rope_parameters", $"an object with rope_type and rope_theta, got {rpNode.ToJsonString()}");
            // Newer transformers files fold rope_theta and the scaling into one "rope_parameters" object.
            ropeTheta = GetDouble(rp, "rope_theta", source) ?? ropeTheta;
            var rt = GetString(rp, "rope_type", source);
            if (rt is not null && rt != "default") scalingNode = rp;
        }
        RopeScaling? scaling = null;
        if (scalingNode is not null)
        {
            var type = GetString(scalingNode, "rope_type", source) ?? GetString(scalingNode, "type", source);
            if (type == "llama3")
            {
                scaling = new RopeScaling(
                    GetDouble(scalingNode, "factor", source) ?? throw new ModelConfigException(source, "rope_scaling.factor", "a number"),
                    GetDouble(scalingNode, "low_freq_factor", source) ?? throw new ModelConfigException(source, "rope_scaling.low_freq_factor", "a number"),
                    GetDouble(scalingNode, "high_freq_factor", source) ?? throw new ModelConfigException(source, "rope_scaling.high_freq_factor", "a number"),
                    GetInt(scalingNode, "original_max_position_embeddings", source) ?? throw new ModelConfigException(source, "rope_scaling.original_max_position_embeddings", "an integer"));
            }
            else if (type is not null && type != "default")
            {
                throw new ModelConfigException(source, "rope_scaling.rope_type", $"'llama3' or 'default'; '{type}' scaling is not supported");
            }
        }

        var act = GetString(o, "hidden_act", source);
        if (act is not null && act != "silu")
            throw new ModelConfigException(source, "hidden_act", $"'silu' (SwiGLU); '{act}' is not supported");
        if (GetBool(o, "mlp_bias", source) == true)
            throw new ModelConfigException(source, "mlp_bias", "false; MLP biases are not supported");
        // Qwen2's sliding window applies to some layers only (max_window_layers); no kernel here does that.
        if (modelType == "qwen2" && GetBool(o, "use_sliding_window", source) == true)
            throw new ModelConfigException(source, "use_sliding_window", "false; Qwen2 sliding-window attention is not supported");
        // Mistral's window applies to every layer: attention must look back at most this many tokens.
        int? slidingWindow = modelType == "mistral" ? GetInt(o, "sliding_window", source) : null;

        var cfg = new ModelConfig
        {
            ModelType = modelType,
            HiddenSize = hidden,
            IntermediateSize = RequireInt(o, "intermediate_size", source),
            NumLayers = RequireInt(o, "num_hidden_layers", source),
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            VocabSize = RequireInt(o, "vocab_size", source),
            RmsNormEps = GetDouble(o, "rms_norm_eps", source) ?? 1e-6,
            RopeTheta = ropeTheta,
            RopeScaling = scaling,
            TieWordEmbeddings = GetBool(o, "tie_word_embeddings", source) ?? false,
            AttentionBias = GetBool(o, "attention_bias", source) ?? (modelType == "qwen2"),
            MaxPositionEmbeddings = GetInt(o, "max_position_embeddings", source) ?? 2048,
            SlidingWindow = slidingWindow,
            BosTokenId = GetInt(o, "bos_token_id", source),
            EosTokenIds = o["eos_token_id"] switch
            {
                null => [],
                JsonArray a => a.Select(n => n is JsonValue v && v.TryGetValue(out int i) ? i : throw new ModelConfigException(source, "eos_token_id", "an integer or a list of integers")).ToArray(),
                JsonValue v when v.TryGetValue(out int i) => [i],
                _ => throw new ModelConfigException(source, "eos_token_id", "an integer or a list of integers"),
            },
        };
        cfg.Validate(source);
        return cfg;
    }

    /// <summary>The config.json a Hugging Face loader (transformers) accepts for this architecture.</summary>
    public JsonObject ToJson()
    {
        var o = new JsonObject
        {
            ["architectures"] = new JsonArray(ModelType switch { "qwen2" => "Qwen2ForCausalLM", "mistral" => "MistralForCausalLM", _ => "LlamaForCausalLM" }),
            ["model_type"] = ModelType,
            ["hidden_size"] = HiddenSize,
            ["intermediate_size"] = IntermediateSize,
            ["num_hidden_layers"] = NumLayers,
            ["num_attention_heads"] = NumHeads,
            ["num_key_value_heads"] = NumKvHeads,
            ["head_dim"] = HeadDim,
            ["vocab_size"] = VocabSize,
            ["hidden_act"] = "silu",
            ["rms_norm_eps"] = RmsNormEps,
            ["rope_theta"] = RopeTheta,
            ["rope_scaling"] = RopeScaling is { } rs ? new JsonObject
            {
                ["rope_type"] = "llama3",
                ["factor"] = rs.Factor,
                ["low_freq_factor"] = rs.LowFreqFactor,
                ["high_freq_factor"] = rs.HighFreqFactor,
                ["original_max_position_embeddings"] = rs.OriginalMaxPositionEmbeddings,
            } : null,
            ["tie_word_embeddings"] = TieWordEmbeddings,
            ["attention_bias"] = AttentionBias,
            ["max_position_embeddings"] = MaxPositionEmbeddings,
            ["torch_dtype"] = "float32",
        };
        if (ModelType != "qwen2") o["mlp_bias"] = false;
        if (ModelType == "qwen2") o["use_sliding_window"] = false;
        if (ModelType == "mistral") o["sliding_window"] = SlidingWindow;
        if (BosTokenId is int b) o["bos_token_id"] = b;
        if (EosTokenIds.Length == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Length > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(e => (JsonNode)e).ToArray());
        return o;
    }

    public void Save(string path) =>
        AtomicFile.WriteAllText(path, ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    /// <summary>Parameter count of the base model (embeddings counted once when tied).</summary>
    public long ParameterCount()
    {
        long h = HiddenSize, i = IntermediateSize, q = QDim, kv = KvDim;
        // checked: each factor fits an array (Validate), but layers x per-layer may still pass 64 bits.
        return checked(Sum());
        long Sum()
        {
            long perLayer = checked(2 * h + h * q + 2 * h * kv + q * h + 3 * h * i);
            if (QkvBias) perLayer += q + 2 * kv;
            if (OBias) perLayer += h;
            long total = checked((long)VocabSize * h + NumLayers * perLayer + h);
            if (!TieWordEmbeddings) total = checked(total + (long)VocabSize * h);
            return total;
        }
    }

    private static string? GetString(JsonObject o, string key, string source) => o[key] switch
    {
        null => null,
        var v when JsonInput.StringOf(v, out _) is { } s => s,
        var n => throw new ModelConfigException(source, key, $"a string, got {n.ToJsonString()}"),
    };

    private static int? GetInt(JsonObject o, string key, string source) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out int i) => i,
        JsonValue v when v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue => (int)d,
        var n => throw new ModelConfigException(source, key, $"an integer, got {n.ToJsonString()}"),
    };

    private static int RequireInt(JsonObject o, string key, string source) =>
        GetInt(o, key, source) ?? throw new ModelConfigException(source, key, "an integer (the field is missing)");

    private static double? GetDouble(JsonObject o, string key, string source) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out double d) => d,
        var n => throw new ModelConfigException(source, key, $"a number, got {n.ToJsonString()}"),
    };

    private static bool? GetBool(JsonObject o, string key, string source) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out bool b) => b,
        var n => throw new ModelConfigException(source, key, $"true or false, got {n.ToJsonString()}"),
    };
}
