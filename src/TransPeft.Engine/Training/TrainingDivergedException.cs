namespace TransPeft.Engine.Training;

/// <summary>The loss or the gradient norm became NaN or infinite; nothing of that step was applied or saved.</summary>
public sealed class TrainingDivergedException(int step, string what, string? lastCheckpoint)
    : Exception($"step {step}: {what} is not finite; training stopped before applying the update"
        + (lastCheckpoint is null ? "" : $" (last checkpoint: {lastCheckpoint})")
        + ". Lower lr, enable max_grad_norm, or check the data.")
{
    public int Step { get; } = step;
}
