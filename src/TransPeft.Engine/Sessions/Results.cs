using TransPeft.Engine.Text;

namespace TransPeft.Engine.Sessions;

/// <summary>
/// Log-likelihood of a token sequence: <see cref="LogProbs"/>[i] = log p(ids[i+1] | ids[0..i]) in nats
/// (length T-1), <see cref="Loss"/> their negated mean (the cross-entropy training reports).
/// </summary>
public sealed record ScoreResult(IReadOnlyList<int> TokenIds, float[] LogProbs)
{
    public int Counted => LogProbs.Length;
    public double Loss => LogProbs.Length == 0 ? 0 : -LogProbs.Sum(x => (double)x) / LogProbs.Length;
    public double Perplexity => Math.Exp(Loss);
}

/// <summary>Which outputs <see cref="InferenceContext.Forward"/> computes.</summary>
[Flags]
public enum ForwardOutputs
{
    Logits = 1,
    /// <summary>The final-norm output of every position, [B*T, hidden_size] (what the LM head multiplies).</summary>
    HiddenStates = 2,
}

/// <summary>Outputs of a full forward over ids [B, T], row-major; null when not asked for.</summary>
public sealed record ForwardResult(int BatchSize, int SequenceLength, float[]? Logits, float[]? HiddenStates);

/// <summary>One streamed token: its id, its index in the continuation, and the stop reason on the last one
/// ("max_new_tokens", "eos", "stop_string", "max_position_embeddings"; null before).</summary>
public readonly record struct GeneratedToken(int Id, int Index, string? StopReason);

/// <summary>Loss of a model on a data file, as training reports validation loss: the mean over every counted target
/// token of every record (not a mean of per-record means).</summary>
public sealed record DatasetScore(string Path, DatasetReport Report, int Records, double LossSum, long Counted)
{
    public double MeanLoss => LossSum / Counted;
    public double Perplexity => Math.Exp(MeanLoss);
}
