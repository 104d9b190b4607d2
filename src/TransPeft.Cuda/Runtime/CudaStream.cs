using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// A CUDA stream: work on it runs in order, work on different streams may overlap. Created non-blocking by
/// default, so it does not synchronise with the legacy default stream (which graph capture forbids anyway).
/// </summary>
public sealed unsafe class CudaStream : CudaResource
{
    private const uint NonBlockingFlag = 1; // CU_STREAM_NON_BLOCKING

    internal CudaStream(CudaContext context, bool nonBlocking) : base(context, Create(context, nonBlocking)) { }

    private static nint Create(CudaContext context, bool nonBlocking)
    {
        context.MakeCurrent();
        nint h;
        Check.Driver(CuDriver.cuStreamCreate(&h, nonBlocking ? NonBlockingFlag : 0), nameof(CuDriver.cuStreamCreate));
        return h;
    }

    /// <summary>Blocks until all work queued on the stream is done (and surfaces its errors).</summary>
    public void Synchronize()
    {
        Context.MakeCurrent();
        Check.Driver(CuDriver.cuStreamSynchronize(Handle), nameof(CuDriver.cuStreamSynchronize));
    }

    /// <summary>Makes later work on this stream wait for <paramref name="evt"/> (recorded on another stream).</summary>
    public void Wait(CudaEvent evt)
    {
        Context.MakeCurrent();
        Check.Driver(CuDriver.cuStreamWaitEvent(Handle, evt.Handle, 0), nameof(CuDriver.cuStreamWaitEvent));
    }

    /// <summary>
    /// Starts recording the work queued on this stream into a graph instead of running it. Thread-local mode:
    /// an unsafe call (a synchronous allocation, a synchronisation) from THIS thread invalidates the capture,
    /// while other threads keep working normally. End with <see cref="EndCapture"/>.
    /// </summary>
    public void BeginCapture()
    {
        Context.MakeCurrent();
        Check.Driver(CuDriver.cuStreamBeginCapture_v2(Handle, CuStreamCaptureMode.ThreadLocal), nameof(CuDriver.cuStreamBeginCapture_v2));
        CaptureGate.Opened();
    }

    /// <summary>Stops capturing and returns the recorded graph.</summary>
    public CudaGraph EndCapture()
    {
        Context.MakeCurrent();
        nint g;
        var result = CuDriver.cuStreamEndCapture(Handle, &g);
        CaptureGate.Closed(); // ended either way: a failed end leaves the stream out of capture mode
        Check.Driver(result, nameof(CuDriver.cuStreamEndCapture));
        return new CudaGraph(Context, g);
    }

    protected override void Release(nint handle) =>
        Check.Driver(CuDriver.cuStreamDestroy_v2(handle), nameof(CuDriver.cuStreamDestroy_v2));
}
