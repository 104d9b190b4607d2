using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// A typed block of device memory. Owns the allocation until disposed; there is no finalizer (freeing needs the
/// context current, and a finalizer thread at process exit is the wrong place to call the driver), so dispose it
/// or let the owning arena do so. Synchronous copies take spans; asynchronous host copies take
/// <see cref="PinnedHostBuffer{T}"/>, because a pageable span may move or vanish before the copy runs.
/// <para>
/// The calls without a stream are complete when they return (the driver's "synchronous" copies and memsets run on
/// the legacy default stream and may still be in flight, e.g. the DMA of a pageable host-to-device copy, so these
/// wrappers wait for that stream). They do NOT wait for work queued on the engine's non-blocking streams:
/// synchronize those first. Hot paths use the stream overloads.
/// </para>
/// </summary>
public sealed unsafe class DeviceBuffer<T> : IDisposable where T : unmanaged
{
    private readonly CudaContext _context;
    private readonly nint _freeStream;
    private readonly bool _streamOrdered;
    private ulong _ptr;

    private DeviceBuffer(CudaContext context, ulong ptr, long length, bool streamOrdered, nint freeStream)
    {
        _context = context;
        _ptr = ptr;
        Length = length;
        _streamOrdered = streamOrdered;
        _freeStream = freeStream;
    }

    internal static DeviceBuffer<T> Allocate(CudaContext context, long length)
    {
        var bytes = ByteCount(length);
        context.MakeCurrent();
        ulong p = 0;
        if (bytes > 0) Check.Driver(CuDriver.cuMemAlloc_v2(&p, (nuint)bytes), nameof(CuDriver.cuMemAlloc_v2));
        return new DeviceBuffer<T>(context, p, length, streamOrdered: false, 0);
    }

    internal static DeviceBuffer<T> AllocateAsync(CudaContext context, long length, CudaStream stream)
    {
        var bytes = ByteCount(length);
        context.MakeCurrent();
        ulong p = 0;
        if (bytes > 0) Check.Driver(CuDriver.cuMemAllocAsync(&p, (nuint)bytes, stream.Handle), nameof(CuDriver.cuMemAllocAsync));
        return new DeviceBuffer<T>(context, p, length, streamOrdered: true, stream.Handle);
    }

    private static long ByteCount(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        return checked(length * sizeof(T));
    }

    public CudaContext Context => _context;

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    public long SizeInBytes => Length * sizeof(T);

    /// <summary>The first element's address.</summary>
    public DevicePtr Ptr
    {
        get
        {
            ObjectDisposedException.ThrowIf(_ptr == 0 && Length > 0, this);
            return new DevicePtr(_ptr);
        }
    }

    /// <summary>The address of element <paramref name="index"/> (for views into an arena).</summary>
    public DevicePtr At(long index)
    {
        if ((ulong)index > (ulong)Length) throw new ArgumentOutOfRangeException(nameof(index), $"index {index} is outside a buffer of {Length} elements");
        return Ptr.OffsetBytes(index * sizeof(T));
    }

    public static implicit operator KernelArg(DeviceBuffer<T> buffer) => buffer.Ptr;

    public static implicit operator DevicePtr(DeviceBuffer<T> buffer) => buffer.Ptr;

    public void CopyFromHost(ReadOnlySpan<T> source)
    {
        CheckLength(source.Length);
        _context.MakeCurrent();
        fixed (T* s = source)
            Check.Driver(CuDriver.cuMemcpyHtoD_v2(Ptr.Address, s, (nuint)(source.Length * sizeof(T))), nameof(CuDriver.cuMemcpyHtoD_v2));
        WaitForLegacyStream();
    }

    public void CopyToHost(Span<T> destination)
    {
        CheckLength(destination.Length);
        _context.MakeCurrent();
        fixed (T* d = destination)
            Check.Driver(CuDriver.cuMemcpyDtoH_v2(d, Ptr.Address, (nuint)(destination.Length * sizeof(T))), nameof(CuDriver.cuMemcpyDtoH_v2));
    }

    public T[] ToArray()
    {
        var a = new T[Length];
        CopyToHost(a);
        return a;
    }

    public void CopyFromHostAsync(PinnedHostBuffer<T> source, CudaStream stream)
    {
        CheckLength(source.Length);
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuMemcpyHtoDAsync_v2(Ptr.Address, source.Pointer, (nuint)(source.Length * sizeof(T)), stream.Handle), nameof(CuDriver.cuMemcpyHtoDAsync_v2));
    }

    public void CopyToHostAsync(PinnedHostBuffer<T> destination, CudaStream stream)
    {
        CheckLength(destination.Length);
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuMemcpyDtoHAsync_v2(destination.Pointer, Ptr.Address, (nuint)(destination.Length * sizeof(T)), stream.Handle), nameof(CuDriver.cuMemcpyDtoHAsync_v2));
    }

    /// <summary>Copies all of <paramref name="source"/> (same length) device to device, ordered on <paramref name="stream"/>
    /// (null: synchronous copy).</summary>
    public void CopyFrom(DeviceBuffer<T> source, CudaStream? stream = null)
    {
        CheckLength(source.Length);
        _context.MakeCurrent();
        var bytes = (nuint)SizeInBytes;
        if (stream is null)
        {
            Check.Driver(CuDriver.cuMemcpyDtoD_v2(Ptr.Address, source.Ptr.Address, bytes), nameof(CuDriver.cuMemcpyDtoD_v2));
            WaitForLegacyStream();
        }
        else Check.Driver(CuDriver.cuMemcpyDtoDAsync_v2(Ptr.Address, source.Ptr.Address, bytes, stream.Handle), nameof(CuDriver.cuMemcpyDtoDAsync_v2));
    }

    /// <summary>Sets every byte to zero (null stream: synchronous).</summary>
    public void Clear(CudaStream? stream = null) => FillBytes(0, stream);

    public void FillBytes(byte value, CudaStream? stream = null)
    {
        _context.MakeCurrent();
        if (stream is null)
        {
            Check.Driver(CuDriver.cuMemsetD8_v2(Ptr.Address, value, (nuint)SizeInBytes), nameof(CuDriver.cuMemsetD8_v2));
            WaitForLegacyStream();
        }
        else Check.Driver(CuDriver.cuMemsetD8Async(Ptr.Address, value, (nuint)SizeInBytes, stream.Handle), nameof(CuDriver.cuMemsetD8Async));
    }

    /// <summary>Writes the 32-bit pattern <paramref name="bits"/> over the buffer (size must be a multiple of 4):
    /// poisons outputs with NaN (0x7FC00000) before a kernel, so an unwritten element cannot pass a test.</summary>
    public void Fill32(uint bits, CudaStream? stream = null)
    {
        if (SizeInBytes % 4 != 0) throw new InvalidOperationException($"Fill32 needs a size that is a multiple of 4 bytes; this buffer has {SizeInBytes}.");
        _context.MakeCurrent();
        var words = (nuint)(SizeInBytes / 4);
        if (stream is null)
        {
            Check.Driver(CuDriver.cuMemsetD32_v2(Ptr.Address, bits, words), nameof(CuDriver.cuMemsetD32_v2));
            WaitForLegacyStream();
        }
        else Check.Driver(CuDriver.cuMemsetD32Async(Ptr.Address, bits, words, stream.Handle), nameof(CuDriver.cuMemsetD32Async));
    }

    /// <summary>Waits for the legacy default stream (handle 0), where the driver's stream-less copies and memsets run.</summary>
    private static void WaitForLegacyStream() =>
        Check.Driver(CuDriver.cuStreamSynchronize(0), nameof(CuDriver.cuStreamSynchronize));

    private void CheckLength(long other)
    {
        if (other != Length) throw new ArgumentException($"Length mismatch: the device buffer holds {Length} {typeof(T).Name} elements, the other side {other}.");
    }

    public void Dispose()
    {
        var p = Interlocked.Exchange(ref _ptr, 0);
        if (p == 0) return;
        _context.MakeCurrent();
        if (_streamOrdered) Check.Driver(CuDriver.cuMemFreeAsync(p, _freeStream), nameof(CuDriver.cuMemFreeAsync));
        else Check.Driver(CuDriver.cuMemFree_v2(p), nameof(CuDriver.cuMemFree_v2));
    }
}
