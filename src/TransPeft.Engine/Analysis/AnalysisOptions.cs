namespace TransPeft.Engine.Analysis;

/// <summary>Optional settings of <see cref="UpdateAnalyzer.Analyze"/>.</summary>
public sealed record AnalysisOptions
{
    /// <summary>How the two models are named in the result (paths, or "v1"/"v2").</summary>
    public string OldName { get; init; } = "old";
    public string NewName { get; init; } = "new";
    /// <summary>Neurons per layer in the top-k overlap; default 10% of intermediate_size (at least 1).</summary>
    public int? TopK { get; init; }
}
