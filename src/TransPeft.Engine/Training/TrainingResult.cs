namespace TransPeft.Engine.Training;

/// <summary>How a run ended: where it stopped, its last losses, and where its outputs are.</summary>
public sealed record TrainingResult(
    int Step, int TotalSteps, bool Completed, bool Interrupted, double? LastLoss, double? LastValLoss,
    string? LastCheckpoint, string? FinalWeights, IReadOnlyList<double> SessionLosses);
