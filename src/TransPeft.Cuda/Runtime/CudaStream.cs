using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// A CUDA stream: work on it runs in order, work on different streams may overlap. Created non-blocking by
/// default, so it does not synchronise with the legacy default stream (which graph capture forbids anyway).
/// </summary>
public sealed unsafe class CudaStream : IDisposable
{
    private const uint NonBlockingFlag = 1; // CU_STREAM_NON_BLOCKING

    private readonly CudaContext _context;
    private nint _handle;

    internal CudaStream(CudaContext context, bool nonBlocking)
    {
        _context = context;
        context.MakeCurrent();
        nint h;
        Check.Driver(CuDriver.cuStreamCreate(&h, nonBlocking ? NonBlockingFlag : 0), nameof(CuDriver.cuStreamCreate));
        _handle = h;
    }

    public CudaContext Context => _context;

    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == 0, this);
            return _handle;
        }
    }

    /// <summary>Blocks until all work queued on the stream is done (and surfaces its errors).</summary>
    public void Synchronize()
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuStreamSynchronize(Handle), nameof(CuDriver.cuStreamSynchronize));
    }

    /// <summary>Makes later work on this stream wait for <paramref name="evt"/> (recorded on another stream).</summary>
    public void Wait(CudaEvent evt)
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuStreamWaitEvent(Handle, evt.Handle, 0), nameof(CuDriver.cuStreamWaitEvent));
    }

    /// <summary>
    /// Starts recording the work queued on this stream into a graph instead of running it. Thread-local mode:
    /// an unsafe call (a synchronous allocation, a synchronisation) from THIS thread invalidates the capture,
    /// while other threads keep working normally. End with <see cref="EndCapture"/>.
    /// </summary>
    public void BeginCapture()
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuStreamBeginCapture_v2(Handle, CuStreamCaptureMode.ThreadLocal), nameof(CuDriver.cuStreamBeginCapture_v2));
    }

    /// <summary>Stops capturing and returns the recorded graph.</summary>
    public CudaGraph EndCapture()
    {
        _context.MakeCurrent();
        nint g;
        Check.Driver(CuDriver.cuStreamEndCapture(Handle, &g), nameof(CuDriver.cuStreamEndCapture));
        return new CudaGraph(_context, g);
    }

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, 0);
        if (h == 0) return;
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuStreamDestroy_v2(h), nameof(CuDriver.cuStreamDestroy_v2));
    }
}
