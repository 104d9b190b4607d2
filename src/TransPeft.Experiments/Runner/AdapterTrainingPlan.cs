namespace TransPeft.Experiments;

/// <summary>LoRA training of one task adapter (the same for every row, so the rows differ only in base and variant).</summary>
public sealed record AdapterTrainingPlan
{
    public required int Steps { get; init; }
    public required int BatchSize { get; init; }
    public required double LearningRate { get; init; }
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public double Dropout { get; init; } = 0.05;
    public IReadOnlyList<string> Targets { get; init; } = ["all-linear"];
    public double WarmupRatio { get; init; } = 0.06;
    /// <summary>Longest example (prompt + completion); longer ones are truncated.</summary>
    public int SeqLen { get; init; } = 160;
    /// <summary>
    /// Also train on an end-of-text token after each completion. Off by default: evaluation scores the completion
    /// alone, and in the pre-training text EOS only ever follows a newline, so an EOS target right after " spam"
    /// is a surprise worth ~7 nats that a small frozen base cannot unlearn through LoRA; its gradient drowned the
    /// label decision (spam: 50% with it, 79% without, measured; docs/EXPERIMENT.md).
    /// </summary>
    public bool TargetEos { get; init; }
}
