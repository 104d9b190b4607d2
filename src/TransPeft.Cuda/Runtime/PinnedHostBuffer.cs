using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// Page-locked host memory (<c>cuMemHostAlloc</c>): the only host memory an asynchronous copy may use, and the
/// fastest for any copy. Exposed as a span; freed on dispose.
/// </summary>
public sealed unsafe class PinnedHostBuffer<T> : IDisposable where T : unmanaged
{
    private readonly CudaContext _context;
    private void* _ptr;

    public PinnedHostBuffer(CudaContext context, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(length), "a pinned buffer is exposed as a span, so it holds at most int.MaxValue elements");
        _context = context;
        Length = (int)length;
        context.MakeCurrent();
        void* p = null;
        var bytes = checked((nuint)(length * sizeof(T)));
        if (bytes > 0) Check.Driver(CuDriver.cuMemHostAlloc(&p, bytes, 0), nameof(CuDriver.cuMemHostAlloc));
        _ptr = p;
    }

    public int Length { get; }

    internal void* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_ptr == null && Length > 0, this);
            return _ptr;
        }
    }

    public Span<T> Span => new(Pointer, Length);

    public void Dispose()
    {
        var p = _ptr;
        if (p == null) return;
        _ptr = null;
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuMemFreeHost(p), nameof(CuDriver.cuMemFreeHost));
    }
}
