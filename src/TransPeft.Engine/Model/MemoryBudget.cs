namespace TransPeft.Engine.Model;

/// <summary>
/// Estimates checked before allocating: a size from config.json or a flag that does not fit the memory this process
/// can use is refused with a <see cref="MemoryBudgetException"/> naming what needed it, instead of an
/// OutOfMemoryException (or the machine swapping) halfway through.
/// </summary>
public static class MemoryBudget
{
    /// <summary>What the GC says this process may use: physical memory, or the container's limit.</summary>
    public static long Available => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>Throws when <paramref name="bytes"/> exceed <paramref name="limit"/> (default <see cref="Available"/>).</summary>
    public static void Require(long bytes, string what, long? limit = null)
    {
        long budget = limit ?? Available;
        if (bytes > budget) throw new MemoryBudgetException(what, bytes, budget);
    }

    /// <summary>fp32 bytes of <paramref name="elements"/> values, refusing a count whose byte size overflows 64 bits.</summary>
    public static long Fp32Bytes(long elements, string what) =>
        elements <= long.MaxValue / sizeof(float) ? elements * sizeof(float) : throw new MemoryBudgetException(what, long.MaxValue, Available);
}

/// <summary>A size that does not fit the memory available (or the limit given). The message says what, how much, and the budget.</summary>
public sealed class MemoryBudgetException(string what, long bytes, long budget)
    : InvalidOperationException($"{what} needs {Gib(bytes)} of memory, more than the {Gib(budget)} available")
{
    public long Bytes { get; } = bytes;
    public long Budget { get; } = budget;

    private static string Gib(long b) => b >= 1L << 30 ? $"{b / (double)(1L << 30):0.0} GiB" : $"{b / (double)(1L << 20):0.0} MiB";
}
