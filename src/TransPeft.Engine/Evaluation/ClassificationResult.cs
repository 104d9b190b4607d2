namespace TransPeft.Engine.Evaluation;

/// <summary>Per label: how often it was the gold label, how often it was predicted, how often both.</summary>
public sealed record ClassCounts(int Gold, int Predicted, int Correct)
{
    /// <summary>Correct / Gold (NaN when the label never was gold).</summary>
    public double Recall => Gold == 0 ? double.NaN : (double)Correct / Gold;
    /// <summary>Correct / Predicted (NaN when the label never was predicted).</summary>
    public double Precision => Predicted == 0 ? double.NaN : (double)Correct / Predicted;
}

/// <summary>One classified example: the summed log-likelihood of each candidate label (in <see cref="Candidates"/> order).</summary>
public sealed record ClassificationPrediction(int Line, string Gold, string Predicted, bool Correct,
    IReadOnlyList<string> Candidates, IReadOnlyList<double> LogLikelihoods);

/// <summary>
/// Accuracy of likelihood-ranked classification: each example's prediction is the candidate label with the
/// highest summed log-probability of its tokens given the prompt. <see cref="Confusion"/>[g][p] counts examples
/// with gold label <see cref="Labels"/>[g] predicted as <see cref="Labels"/>[p].
/// </summary>
public sealed record ClassificationResult(
    int Count, int Correct, double Accuracy, ConfidenceInterval Ci95,
    IReadOnlyList<string> Labels, IReadOnlyDictionary<string, ClassCounts> PerClass,
    IReadOnlyList<IReadOnlyList<int>> Confusion, string LabelSource,
    IReadOnlyList<ClassificationPrediction>? Predictions)
{
    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, ResultJsonContext.Default.ClassificationResult);
}
