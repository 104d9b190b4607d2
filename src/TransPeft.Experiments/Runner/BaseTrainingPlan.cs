namespace TransPeft.Experiments;

/// <summary>
/// Full training of a base model: v1 from scratch on corpus A, or the update v1 -> v2 on corpus B with
/// <see cref="ReplayFraction"/> of corpus A mixed in (0 = B alone; 0.5 = as many A tokens as B tokens).
/// </summary>
public sealed record BaseTrainingPlan
{
    public required int Steps { get; init; }
    /// <summary>Sequences per optimizer step (micro-batch = all of them).</summary>
    public required int BatchSize { get; init; }
    public required int SeqLen { get; init; }
    public required double LearningRate { get; init; }
    public double WarmupRatio { get; init; } = 0.05;
    public double WeightDecay { get; init; }
    /// <summary>Share of the training text that is replayed corpus A (only for the update).</summary>
    public double ReplayFraction { get; init; }
    /// <summary>Validation evaluations during training (0 = only at the end).</summary>
    public int Evaluations { get; init; } = 5;
    /// <summary>Validation sequences per evaluation (0 = the whole held-out text).</summary>
    public int EvalSequences { get; init; } = 64;
    /// <summary>Checkpoints during training, for resuming an interrupted run (0 = only at the end).</summary>
    public int Checkpoints { get; init; } = 5;

    public long TokensPerStep => (long)BatchSize * SeqLen;
}
