using System.Globalization;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.TransPeft;

/// <summary>One config.json field whose value differs between two models.</summary>
/// <param name="AffectsShapes">True when the difference changes a tensor's shape or the layer math, so
/// weights (and LoRA modules) of one model cannot be used with the other.</param>
internal sealed record ConfigDifference(string Field, string Left, string Right, bool AffectsShapes);

/// <summary>Field-by-field comparison of two architectures (an old base and its update, a model and its copy).</summary>
internal static class ArchitectureDiff
{
    /// <summary>Every differing field, shape-relevant ones first, in config.json's names.</summary>
    public static IReadOnlyList<ConfigDifference> Compare(ModelConfig left, ModelConfig right)
    {
        var diffs = new List<ConfigDifference>();
        void Check<T>(string field, T a, T b, bool shapes)
        {
            if (!EqualityComparer<T>.Default.Equals(a, b)) diffs.Add(new(field, Show(a), Show(b), shapes));
        }
        Check("model_type", left.ModelType, right.ModelType, true);
        Check("hidden_size", left.HiddenSize, right.HiddenSize, true);
        Check("intermediate_size", left.IntermediateSize, right.IntermediateSize, true);
        Check("num_hidden_layers", left.NumLayers, right.NumLayers, true);
        Check("num_attention_heads", left.NumHeads, right.NumHeads, true);
        Check("num_key_value_heads", left.NumKvHeads, right.NumKvHeads, true);
        Check("head_dim", left.HeadDim, right.HeadDim, true);
        Check("vocab_size", left.VocabSize, right.VocabSize, true);
        Check("tie_word_embeddings", left.TieWordEmbeddings, right.TieWordEmbeddings, true);
        Check("q/k/v bias", left.QkvBias, right.QkvBias, true);
        Check("o_proj bias", left.OBias, right.OBias, true);
        Check("rms_norm_eps", left.RmsNormEps, right.RmsNormEps, false);
        Check("rope_theta", left.RopeTheta, right.RopeTheta, false);
        Check("rope_scaling", left.RopeScaling?.ToString() ?? "none", right.RopeScaling?.ToString() ?? "none", false);
        Check("max_position_embeddings", left.MaxPositionEmbeddings, right.MaxPositionEmbeddings, false);
        return diffs;
    }

    private static string Show<T>(T v) => v switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };

    public static string Shape(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";
    public static string Shape(IEnumerable<int> shape) => $"[{string.Join(", ", shape)}]";
}
