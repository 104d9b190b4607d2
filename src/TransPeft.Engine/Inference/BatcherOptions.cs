namespace TransPeft.Engine.Inference;

/// <summary>Limits of <see cref="ContinuousBatcher{TSequence}"/>.</summary>
public sealed record BatcherOptions
{
    /// <summary>Most requests in one step (running decodes plus prefills).</summary>
    public int MaxBatchRequests { get; init; } = 32;

    /// <summary>Most tokens fed in one step: one per decoding request plus prompt chunks. Must exceed
    /// <see cref="MaxBatchRequests"/>, so that a full decode batch still leaves room for the oldest waiting prompt.</summary>
    public int MaxBatchTokens { get; init; } = 512;

    public void Validate()
    {
        if (MaxBatchRequests < 1) throw new ArgumentOutOfRangeException(nameof(MaxBatchRequests), $"max batch requests must be >= 1, got {MaxBatchRequests}");
        if (MaxBatchTokens <= MaxBatchRequests)
            throw new ArgumentOutOfRangeException(nameof(MaxBatchTokens), $"max batch tokens ({MaxBatchTokens}) must exceed max batch requests ({MaxBatchRequests}) so a waiting prompt always fits next to a full decode batch");
    }
}
