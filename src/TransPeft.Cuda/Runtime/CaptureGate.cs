namespace TransPeft.Cuda;

/// <summary>
/// Stream captures in flight in this process. Some calls synchronize the whole device (<c>cublasDestroy</c> does),
/// and a device-wide synchronisation while ANY stream captures invalidates that capture, even one on another thread
/// in thread-local mode. Such calls wait here until no capture is open. A thread that is itself capturing must not
/// make them (it would wait for itself): that is refused with an exception instead.
/// </summary>
internal static class CaptureGate
{
    private static readonly object s_lock = new();
    private static int s_open;
    [ThreadStatic] private static int t_open;

    public static void Opened()
    {
        lock (s_lock) s_open++;
        t_open++;
    }

    public static void Closed()
    {
        t_open--;
        lock (s_lock)
        {
            s_open--;
            Monitor.PulseAll(s_lock);
        }
    }

    /// <summary>Blocks until no stream of this process is capturing.</summary>
    public static void WaitUntilNoneOpen(string what)
    {
        if (t_open > 0) throw new InvalidOperationException($"{what} synchronizes the device and cannot run on a thread that is capturing a CUDA graph");
        lock (s_lock)
            while (s_open > 0) Monitor.Wait(s_lock);
    }
}
