using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>An instantiated, launchable graph (<c>CUgraphExec</c>).</summary>
public sealed unsafe class CudaGraphExec : CudaResource
{
    internal CudaGraphExec(CudaContext context, nint handle) : base(context, handle) { }

    /// <summary>Queues the whole graph on <paramref name="stream"/>. Allocates nothing.</summary>
    public void Launch(CudaStream stream)
    {
        Context.MakeCurrent();
        Check.Driver(CuDriver.cuGraphLaunch(Handle, stream.Handle), nameof(CuDriver.cuGraphLaunch));
    }

    protected override void Release(nint handle) =>
        Check.Driver(CuDriver.cuGraphExecDestroy(handle), nameof(CuDriver.cuGraphExecDestroy));
}
