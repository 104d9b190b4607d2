namespace TransPeft.Engine.Analysis;

/// <summary>Per decoder layer: relative weight change of the attention projections (q, k, v, o together),
/// of the FFN projections (gate, up, down together) and of the two norms, each ||ΔW||_F / ||W_old||_F over the
/// concatenation of the tensors.</summary>
public sealed record LayerWeightChange(int Layer, double Attention, double Ffn, double Norms);

/// <summary>
/// One layer's sub-layer outputs of the two models on the same inputs: mean per-token cosine similarity of the
/// attention output (o_proj) and of the FFN output (down_proj); overlap of the top-k FFN neurons by mean |a|
/// (Jaccard |A∩B|/|A∪B| and fraction |A∩B|/k); and the mean per-token FFN contribution ||FFN(x)|| / ||h||
/// (h = the residual stream the FFN adds to) in each model.
/// </summary>
public sealed record LayerActivationComparison(int Layer, double AttentionCosine, double FfnCosine,
    double TopKJaccard, double TopKOverlap, double FfnContributionOld, double FfnContributionNew);

/// <summary>The data-dependent half of an update analysis.</summary>
public sealed record ActivationComparison(long Tokens, int TopK, IReadOnlyList<LayerActivationComparison> Layers);

/// <summary>
/// How an update (old base → new base, same architecture) moved the model, as the Trans-PEFT paper measures
/// it. <see cref="RelativeChange"/>[layer][module] is ||W_new − W_old||_F / ||W_old||_F for the modules named
/// in <see cref="Modules"/> (q/k/v/o, gate/up/down, input and post-attention norms); the expected shape of
/// a real update is FFN changing more than attention.
/// </summary>
public sealed record UpdateAnalysis
{
    public required string OldModel { get; init; }
    public required string NewModel { get; init; }
    public required string ModelType { get; init; }
    public required int NumLayers { get; init; }
    public required IReadOnlyList<string> Modules { get; init; }
    public required IReadOnlyList<IReadOnlyList<double>> RelativeChange { get; init; }
    public required IReadOnlyList<LayerWeightChange> Layers { get; init; }
    /// <summary>All attention projections of all layers together.</summary>
    public required double AttentionChange { get; init; }
    /// <summary>All FFN projections of all layers together.</summary>
    public required double FfnChange { get; init; }
    public required double EmbeddingChange { get; init; }
    /// <summary>null when the output head is tied to the embedding.</summary>
    public required double? LmHeadChange { get; init; }
    public required double FinalNormChange { get; init; }
    /// <summary>null when no data was given.</summary>
    public ActivationComparison? Activations { get; init; }

    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, Evaluation.ResultJsonContext.Default.UpdateAnalysis);
}
