using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// A captured graph of GPU work (<c>CUgraph</c>). Instantiate it once, then launch the executable graph as
/// often as needed: one launch replaces hundreds of kernel launches (decode steps, training steps).
/// </summary>
public sealed unsafe class CudaGraph : CudaResource
{
    private const ulong AutoFreeOnLaunch = 1; // CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH

    internal CudaGraph(CudaContext context, nint handle) : base(context, handle) { }

    /// <summary>Captures what <paramref name="record"/> queues on <paramref name="stream"/> (thread-local capture
    /// mode). If <paramref name="record"/> throws, the capture is ended and discarded before the exception goes on.</summary>
    public static CudaGraph Capture(CudaStream stream, Action<CudaStream> record)
    {
        stream.BeginCapture();
        try
        {
            record(stream);
        }
        catch
        {
            nint partial;
            stream.Context.MakeCurrent();
            if (CuDriver.cuStreamEndCapture(stream.Handle, &partial) == CuResult.Success && partial != 0)
                CuDriver.cuGraphDestroy(partial);
            throw;
        }
        return stream.EndCapture();
    }

    /// <summary>Builds the executable graph. <paramref name="autoFreeOnLaunch"/> lets stream-ordered allocations
    /// made inside the graph be freed by a later launch.</summary>
    public CudaGraphExec Instantiate(bool autoFreeOnLaunch = false)
    {
        Context.MakeCurrent();
        nint exec;
        Check.Driver(CuDriver.cuGraphInstantiateWithFlags(&exec, Handle, autoFreeOnLaunch ? AutoFreeOnLaunch : 0), nameof(CuDriver.cuGraphInstantiateWithFlags));
        return new CudaGraphExec(Context, exec);
    }

    protected override void Release(nint handle) =>
        Check.Driver(CuDriver.cuGraphDestroy(handle), nameof(CuDriver.cuGraphDestroy));
}
