namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Thread budget of the CPU backend: a session's <c>SessionOptions.Threads</c> for the calls it makes (a
/// thread-scoped value, see <see cref="Use"/>), else every core. The engine reads no environment variable; the
/// CLI maps TPEFT_THREADS and --threads onto the session option.
/// </summary>
internal static class CpuParallel
{
    /// <summary>Outside any session's scope: every core. There is no process-wide setter; counts come from sessions.</summary>
    private static readonly int _threads = Environment.ProcessorCount;

    /// <summary>Set by <see cref="Use"/> for the calls a session makes on this thread (0 = none).</summary>
    [ThreadStatic] private static int _scoped;

    /// <summary>The count in force on this thread: the calling session's, else the process default.</summary>
    public static int Threads => _scoped > 0 ? _scoped : _threads;

    /// <summary>
    /// Makes <paramref name="threads"/> the budget of the calls this thread makes until the scope is disposed
    /// (0 keeps the current one). This is how a session's thread option reaches the kernels without a global: two
    /// sessions with different counts can run side by side. A struct, so entering it allocates nothing.
    /// </summary>
    public static Scope Use(int threads) => new(threads);

    public readonly struct Scope : IDisposable
    {
        private readonly int _previous;
        private readonly bool _set;

        internal Scope(int threads)
        {
            _previous = _scoped;
            _set = threads > 0;
            if (_set) _scoped = threads;
        }

        public void Dispose()
        {
            if (_set) _scoped = _previous;
        }
    }

    public static ParallelOptions Options => new() { MaxDegreeOfParallelism = Threads };

    /// <summary>
    /// True when <see cref="For"/> would hand the work to the thread pool. Ops on the per-token decode path test it
    /// first and otherwise loop over a static row method themselves: a lambda capturing their arguments would be
    /// allocated on every call even when it then runs on the calling thread.
    /// </summary>
    public static bool Splits(int count, bool parallel = true) => parallel && count > 1 && Threads > 1;

    /// <summary>
    /// Runs body(i) for i in [0, count), in parallel when the work is worth it. A split's iterations run with a budget of
    /// one thread: the split already uses the session's threads, and a pool thread carries no session scope (it would
    /// otherwise split again across every core).
    /// </summary>
    public static void For(int count, Action<int> body, bool parallel = true)
    {
        if (!parallel || count <= 1 || Threads <= 1)
        {
            for (int i = 0; i < count; i++) body(i);
            return;
        }
        try
        {
            Parallel.For(0, count, Options, i =>
            {
                using var alone = Use(1);
                body(i);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1)
        {
            // One failing iteration: its own exception (and one-line message), as the serial loop would throw it.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
    }
}
