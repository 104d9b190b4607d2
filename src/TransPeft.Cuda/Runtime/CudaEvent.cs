using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>A marker in a stream: for ordering streams against each other and for GPU-side timing.</summary>
public sealed unsafe class CudaEvent : IDisposable
{
    private const uint DisableTimingFlag = 2; // CU_EVENT_DISABLE_TIMING

    private readonly CudaContext _context;
    private nint _handle;

    internal CudaEvent(CudaContext context, bool timing)
    {
        _context = context;
        context.MakeCurrent();
        nint h;
        Check.Driver(CuDriver.cuEventCreate(&h, timing ? 0 : DisableTimingFlag), nameof(CuDriver.cuEventCreate));
        _handle = h;
    }

    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == 0, this);
            return _handle;
        }
    }

    public void Record(CudaStream stream)
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuEventRecord(Handle, stream.Handle), nameof(CuDriver.cuEventRecord));
    }

    public void Synchronize()
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuEventSynchronize(Handle), nameof(CuDriver.cuEventSynchronize));
    }

    /// <summary>True when all work before the recorded point has finished.</summary>
    public bool IsComplete
    {
        get
        {
            _context.MakeCurrent();
            var r = CuDriver.cuEventQuery(Handle);
            if (r == CuResult.ErrorNotReady) return false;
            Check.Driver(r, nameof(CuDriver.cuEventQuery));
            return true;
        }
    }

    /// <summary>GPU time between two recorded, completed events, in milliseconds (about 0.5 us resolution).
    /// Uses <c>cuEventElapsedTime_v2</c> where the driver has it, else <c>cuEventElapsedTime</c>.</summary>
    public static float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        start._context.MakeCurrent();
        float ms;
        Check.Driver(CuDriverOptional.EventElapsedTime(&ms, start.Handle, end.Handle), CuDriverOptional.EventElapsedTimeEntryPoint);
        return ms;
    }

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, 0);
        if (h == 0) return;
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuEventDestroy_v2(h), nameof(CuDriver.cuEventDestroy_v2));
    }
}
