using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>An instantiated, launchable graph (<c>CUgraphExec</c>).</summary>
public sealed unsafe class CudaGraphExec : IDisposable
{
    private readonly CudaContext _context;
    private nint _handle;

    internal CudaGraphExec(CudaContext context, nint handle)
    {
        _context = context;
        _handle = handle;
    }

    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == 0, this);
            return _handle;
        }
    }

    /// <summary>Queues the whole graph on <paramref name="stream"/>. Allocates nothing.</summary>
    public void Launch(CudaStream stream)
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuGraphLaunch(Handle, stream.Handle), nameof(CuDriver.cuGraphLaunch));
    }

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, 0);
        if (h == 0) return;
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuGraphExecDestroy(h), nameof(CuDriver.cuGraphExecDestroy));
    }
}
