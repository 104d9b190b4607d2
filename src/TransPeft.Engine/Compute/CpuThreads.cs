using TransPeft.Engine.Compute.Cpu;

namespace TransPeft.Engine.Compute;

/// <summary>
/// The CPU thread budget for engine calls made outside a session (<c>TrainingRun.Execute</c>, <c>UpdateAnalyzer</c>,
/// a <c>TaskEvaluator</c> over a model, the BERT embedder and classifier): like a session's <c>Threads</c>, it holds
/// for the calls this thread makes until the returned scope is disposed, and nothing process-wide changes. A
/// session whose <c>Threads</c> is 0 inherits it.
/// </summary>
public static class CpuThreads
{
    /// <summary>Uses <paramref name="threads"/> CPU threads (0 = keep the current budget) on this thread until disposed.</summary>
    public static IDisposable Use(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        return CpuParallel.Use(threads);
    }

    /// <summary>The budget in force for calls this thread makes now: the innermost <see cref="Use"/> scope's count,
    /// else every core.</summary>
    public static int Current => CpuParallel.Threads;
}
