namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Thread budget of the CPU backend. Defaults to every core. The engine reads no environment variable:
/// a host sets the count (the CLI maps TPEFT_THREADS and --threads onto it).
/// </summary>
internal static class CpuParallel
{
    private static int _threads = Environment.ProcessorCount;

    public static int Threads
    {
        get => _threads;
        set => _threads = value > 0 ? value : Environment.ProcessorCount;
    }

    public static ParallelOptions Options => new() { MaxDegreeOfParallelism = _threads };

    /// <summary>Runs body(i) for i in [0, count), in parallel when the work is worth it.</summary>
    public static void For(int count, Action<int> body, bool parallel = true)
    {
        if (!parallel || count <= 1 || _threads <= 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        Parallel.For(0, count, Options, body);
    }
}
