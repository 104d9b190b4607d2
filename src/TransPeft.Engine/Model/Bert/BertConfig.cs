using TransPeft.Engine.IO;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace TransPeft.Engine.Model.Bert;

/// <summary>
/// The architecture of a BERT encoder (Hugging Face <c>config.json</c>, model_type bert): learned absolute
/// positions, token types, post-LayerNorm blocks with biases everywhere, exact (erf) GELU.
/// </summary>
public sealed record BertConfig
{
    public int VocabSize { get; init; }
    public int HiddenSize { get; init; }
    public int NumLayers { get; init; }
    public int NumHeads { get; init; }
    public int IntermediateSize { get; init; }
    public int MaxPositionEmbeddings { get; init; } = 512;
    public int TypeVocabSize { get; init; } = 2;
    public double LayerNormEps { get; init; } = 1e-12;
    public int PadTokenId { get; init; }

    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>Checks the dimensions agree; throws naming the field and what was expected.</summary>
    public void Validate(string source)
    {
        void Require(bool ok, string field, string expected)
        {
            if (!ok) throw new ModelConfigException(source, field, expected);
        }
        Require(VocabSize > 0, "vocab_size", $"a positive integer, got {VocabSize}");
        Require(HiddenSize > 0, "hidden_size", $"a positive integer, got {HiddenSize}");
        Require(NumLayers > 0, "num_hidden_layers", $"a positive integer, got {NumLayers}");
        Require(NumHeads > 0 && HiddenSize % NumHeads == 0, "num_attention_heads", $"a positive divisor of hidden_size ({HiddenSize}), got {NumHeads}");
        Require(IntermediateSize > 0, "intermediate_size", $"a positive integer, got {IntermediateSize}");
        Require(MaxPositionEmbeddings > 0, "max_position_embeddings", $"a positive integer, got {MaxPositionEmbeddings}");
        Require(TypeVocabSize > 0, "type_vocab_size", $"a positive integer, got {TypeVocabSize}");
        Require(LayerNormEps > 0, "layer_norm_eps", $"a positive number, got {LayerNormEps}");
    }

    /// <summary>Reads a config.json of model_type bert (hidden_act gelu; absolute positions).</summary>
    public static BertConfig Load(string path)
    {
        var o = JsonInput.ReadConfigObject(path);
        string type = Str(o, "model_type", path);
        if (type != "bert") throw new ModelConfigException(path, "model_type", $"'bert', got '{type}'");
        if (o["hidden_act"] is JsonValue act && act.GetValue<string>() is not ("gelu" or "gelu_python"))
            throw new ModelConfigException(path, "hidden_act", $"'gelu' (exact erf GELU), got '{act}'");
        if (o["position_embedding_type"] is JsonValue pe && pe.GetValue<string>() != "absolute")
            throw new ModelConfigException(path, "position_embedding_type", $"'absolute', got '{pe}'");
        var c = new BertConfig
        {
            VocabSize = Int(o, "vocab_size", path),
            HiddenSize = Int(o, "hidden_size", path),
            NumLayers = Int(o, "num_hidden_layers", path),
            NumHeads = Int(o, "num_attention_heads", path),
            IntermediateSize = Int(o, "intermediate_size", path),
            MaxPositionEmbeddings = o.ContainsKey("max_position_embeddings") ? Int(o, "max_position_embeddings", path) : 512,
            TypeVocabSize = o.ContainsKey("type_vocab_size") ? Int(o, "type_vocab_size", path) : 2,
            LayerNormEps = o["layer_norm_eps"] is JsonValue eps ? eps.GetValue<double>() : 1e-12,
            PadTokenId = o.ContainsKey("pad_token_id") ? Int(o, "pad_token_id", path) : 0,
        };
        c.Validate(path);
        return c;
    }

    /// <summary>The config.json Hugging Face transformers writes for a BertModel of these dimensions.</summary>
    public string ToJson() => new JsonObject
    {
        ["architectures"] = new JsonArray("BertModel"),
        ["model_type"] = "bert",
        ["vocab_size"] = VocabSize,
        ["hidden_size"] = HiddenSize,
        ["num_hidden_layers"] = NumLayers,
        ["num_attention_heads"] = NumHeads,
        ["intermediate_size"] = IntermediateSize,
        ["hidden_act"] = "gelu",
        ["hidden_dropout_prob"] = 0.1,
        ["attention_probs_dropout_prob"] = 0.1,
        ["max_position_embeddings"] = MaxPositionEmbeddings,
        ["type_vocab_size"] = TypeVocabSize,
        ["initializer_range"] = 0.02,
        ["layer_norm_eps"] = LayerNormEps,
        ["pad_token_id"] = PadTokenId,
        ["position_embedding_type"] = "absolute",
        ["torch_dtype"] = "float32",
    }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    private static int Int(JsonObject o, string field, string path)
    {
        try
        {
            if (o[field] is JsonValue v && v.TryGetValue<int>(out var i)) return i;
        }
        catch (FormatException) { }
        catch (InvalidOperationException) { }
        throw new ModelConfigException(path, field, "an integer");
    }

    private static string Str(JsonObject o, string field, string path) =>
        o[field] is JsonValue v && v.TryGetValue<string>(out var s) ? s : throw new ModelConfigException(path, field, "a string");
}
