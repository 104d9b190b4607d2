namespace TransPeft.Cli.Experiment;

/// <summary>LoRA training of one task adapter (the same for every row, so the rows differ only in base and variant).</summary>
internal sealed record AdapterTrainingPlan
{
    public required int Steps { get; init; }
    public required int BatchSize { get; init; }
    public required double LearningRate { get; init; }
    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public double Dropout { get; init; } = 0.05;
    public IReadOnlyList<string> Targets { get; init; } = ["all-linear"];
    public double WarmupRatio { get; init; } = 0.06;
    /// <summary>Longest example (prompt + completion + EOS); longer ones are truncated.</summary>
    public int SeqLen { get; init; } = 160;
}
