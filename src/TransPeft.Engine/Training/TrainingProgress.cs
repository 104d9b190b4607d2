namespace TransPeft.Engine.Training;

/// <summary>
/// One progress report of a training run (the CLI renders these as a progress bar). Reports are made
/// synchronously on the training thread: a slow handler slows training.
/// </summary>
public sealed record TrainingProgress(
    TrainingEvent Event, int Step, int TotalSteps, TimeSpan Elapsed,
    double? Loss = null, double? LearningRate = null, double? GradNorm = null, double? TokensPerSecond = null,
    TimeSpan? Eta = null, double? ValLoss = null, string? Path = null, string? Message = null);
