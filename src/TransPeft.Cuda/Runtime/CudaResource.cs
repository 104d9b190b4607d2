namespace TransPeft.Cuda;

/// <summary>
/// A driver object owned by this process (stream, event, graph, module, cuBLAS handle): one handle, released once
/// on <see cref="Dispose"/> with the owning context current. No finalizer: releasing needs the context, and a
/// finalizer thread at process exit is no place to call the driver.
/// </summary>
public abstract class CudaResource : IDisposable
{
    private nint _handle;

    protected CudaResource(CudaContext context, nint handle)
    {
        Context = context;
        _handle = handle;
    }

    public CudaContext Context { get; }

    /// <summary>The native handle; throws <see cref="ObjectDisposedException"/> once disposed.</summary>
    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == 0, this);
            return _handle;
        }
    }

    /// <summary>Destroys the native object; called once, with the context current.</summary>
    protected abstract void Release(nint handle);

    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, 0);
        if (h == 0) return;
        Context.MakeCurrent();
        Release(h);
        GC.SuppressFinalize(this);
    }
}
