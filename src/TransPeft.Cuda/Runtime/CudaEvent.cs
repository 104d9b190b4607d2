using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>A marker in a stream: for ordering streams against each other and for GPU-side timing.</summary>
public sealed unsafe class CudaEvent : CudaResource
{
    private const uint DisableTimingFlag = 2; // CU_EVENT_DISABLE_TIMING

    internal CudaEvent(CudaContext context, bool timing) : base(context, Create(context, timing)) { }

    private static nint Create(CudaContext context, bool timing)
    {
        context.MakeCurrent();
        nint h;
        Check.Driver(CuDriver.cuEventCreate(&h, timing ? 0 : DisableTimingFlag), nameof(CuDriver.cuEventCreate));
        return h;
    }

    public void Record(CudaStream stream)
    {
        Context.MakeCurrent();
        Check.Driver(CuDriver.cuEventRecord(Handle, stream.Handle), nameof(CuDriver.cuEventRecord));
    }

    public void Synchronize()
    {
        Context.MakeCurrent();
        Check.Driver(CuDriver.cuEventSynchronize(Handle), nameof(CuDriver.cuEventSynchronize));
    }

    /// <summary>True when all work before the recorded point has finished.</summary>
    public bool IsComplete
    {
        get
        {
            Context.MakeCurrent();
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
        start.Context.MakeCurrent();
        float ms;
        Check.Driver(CuDriverOptional.EventElapsedTime(&ms, start.Handle, end.Handle), CuDriverOptional.EventElapsedTimeEntryPoint);
        return ms;
    }

    protected override void Release(nint handle) =>
        Check.Driver(CuDriver.cuEventDestroy_v2(handle), nameof(CuDriver.cuEventDestroy_v2));
}
