namespace TransPeft.Engine.Training;

/// <summary>
/// The learning rate of optimizer step s (1-based) of a run of <c>total</c> steps with <c>warmup</c> warmup steps:
/// <code>
///   s &lt;= warmup:  lr * s / warmup                      (ramps up; step 1 is never wasted at lr 0)
///   after:        p = (s - 1 - warmup) / (total - warmup)  in [0, 1)
///     constant:   lr
///     linear:     lr * (1 - p)                          (the first step after warmup uses the full lr,
///     cosine:     lr * (1 + cos(pi * p)) / 2             the last a small positive one)
/// </code>
/// This is Hugging Face's schedule evaluated one step later during warmup (HF's first warmup step has lr 0).
/// </summary>
public sealed class LearningRateSchedule
{
    public ScheduleKind Kind { get; }
    public double BaseLr { get; }
    public int WarmupSteps { get; }
    public int TotalSteps { get; }

    public LearningRateSchedule(ScheduleKind kind, double baseLr, int warmupSteps, int totalSteps)
    {
        if (totalSteps <= 0) throw new ArgumentOutOfRangeException(nameof(totalSteps), "total steps must be positive");
        if (warmupSteps < 0 || warmupSteps > totalSteps) throw new ArgumentOutOfRangeException(nameof(warmupSteps), $"warmup steps must be in [0, {totalSteps}]");
        Kind = kind; BaseLr = baseLr; WarmupSteps = warmupSteps; TotalSteps = totalSteps;
    }

    public double At(int step)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), "steps are counted from 1");
        if (step <= WarmupSteps) return BaseLr * step / WarmupSteps;
        if (Kind == ScheduleKind.Constant) return BaseLr;
        double p = Math.Min(1.0, (double)(step - 1 - WarmupSteps) / (TotalSteps - WarmupSteps));
        return Kind == ScheduleKind.Linear
            ? BaseLr * (1 - p)
            : BaseLr * 0.5 * (1 + Math.Cos(Math.PI * p));
    }
}
