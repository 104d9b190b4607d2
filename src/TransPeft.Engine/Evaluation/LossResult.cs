namespace TransPeft.Engine.Evaluation;

/// <summary>
/// Cross-entropy over the completion tokens of every record: <see cref="MeanLoss"/> = (Σ token NLL) / Tokens,
/// the mean over all counted tokens (as Hugging Face computes a causal LM's loss with prompt labels set to
/// -100); perplexity = exp(mean loss).
/// </summary>
public sealed record LossResult(int Records, long Tokens, double MeanLoss, double Perplexity)
{
    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, ResultJsonContext.Default.LossResult);
}
