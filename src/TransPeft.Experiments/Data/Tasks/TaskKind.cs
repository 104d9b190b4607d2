namespace TransPeft.Experiments.Data.Tasks;

public enum TaskKind
{
    /// <summary>The completion is one of a fixed set of label completions; score by accuracy (compare the labels' likelihoods) and loss.</summary>
    Classification,
    /// <summary>Free-text completion; score by completion loss (and exact match when decoding).</summary>
    Generation,
}
