using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// Copies and memsets on raw device addresses, for views into an arena (one large <see cref="DeviceBuffer{T}"/>
/// carved into many tensors), where <see cref="DeviceBuffer{T}"/>'s whole-buffer methods do not fit.
/// <para>
/// The synchronous copies run on the legacy default stream and are complete when they return; like
/// <see cref="DeviceBuffer{T}"/>'s they do NOT wait for work queued on non-blocking streams, so a caller that
/// queued kernels on such a stream synchronizes it first. The asynchronous memsets are ordered on the given
/// stream and may be captured into a graph.
/// </para>
/// </summary>
public static unsafe class DeviceMemory
{
    /// <summary>Copies <paramref name="source"/> to <paramref name="destination"/> and waits until it has landed.</summary>
    public static void CopyToDevice<T>(CudaContext context, DevicePtr destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        if (source.IsEmpty) return;
        RequireAddress(destination, nameof(destination));
        context.MakeCurrent();
        fixed (T* s = source)
            Check.Driver(CuDriver.cuMemcpyHtoD_v2(destination.Address, s, (nuint)((long)source.Length * sizeof(T))), nameof(CuDriver.cuMemcpyHtoD_v2));
        // A pageable host-to-device copy may return before its DMA has finished: wait for the legacy stream.
        Check.Driver(CuDriver.cuStreamSynchronize(0), nameof(CuDriver.cuStreamSynchronize));
    }

    /// <summary>Copies <c>destination.Length</c> elements from <paramref name="source"/> into host memory.</summary>
    public static void CopyToHost<T>(CudaContext context, Span<T> destination, DevicePtr source) where T : unmanaged
    {
        if (destination.IsEmpty) return;
        RequireAddress(source, nameof(source));
        context.MakeCurrent();
        fixed (T* d = destination)
            Check.Driver(CuDriver.cuMemcpyDtoH_v2(d, source.Address, (nuint)((long)destination.Length * sizeof(T))), nameof(CuDriver.cuMemcpyDtoH_v2));
    }

    /// <summary>Queues a copy of <paramref name="bytes"/> bytes from page-locked host memory (<c>cuMemHostAlloc</c>) to the
    /// device on <paramref name="stream"/>; the host bytes must stay as they are until the stream has run the copy.</summary>
    public static void CopyToDeviceAsync(CudaContext context, DevicePtr destination, nint source, long bytes, CudaStream stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0) return;
        RequireAddress(destination, nameof(destination));
        context.MakeCurrent();
        Check.Driver(CuDriver.cuMemcpyHtoDAsync_v2(destination.Address, (void*)source, (nuint)bytes, stream.Handle), nameof(CuDriver.cuMemcpyHtoDAsync_v2));
    }

    /// <summary>Queues a copy of <paramref name="bytes"/> bytes from the device to page-locked host memory on
    /// <paramref name="stream"/>; the host bytes are valid once the stream has run the copy (synchronize).</summary>
    public static void CopyToHostAsync(CudaContext context, nint destination, DevicePtr source, long bytes, CudaStream stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0) return;
        RequireAddress(source, nameof(source));
        context.MakeCurrent();
        Check.Driver(CuDriver.cuMemcpyDtoHAsync_v2((void*)destination, source.Address, (nuint)bytes, stream.Handle), nameof(CuDriver.cuMemcpyDtoHAsync_v2));
    }

    /// <summary>Page-locked host memory for the asynchronous copies (<c>cuMemHostAlloc</c>); free it with <see cref="FreeHost"/>.</summary>
    public static nint AllocateHost(CudaContext context, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        context.MakeCurrent();
        void* p = null;
        Check.Driver(CuDriver.cuMemHostAlloc(&p, (nuint)bytes, 0), nameof(CuDriver.cuMemHostAlloc));
        return (nint)p;
    }

    public static void FreeHost(CudaContext context, nint pointer)
    {
        if (pointer == 0) return;
        context.MakeCurrent();
        Check.Driver(CuDriver.cuMemFreeHost((void*)pointer), nameof(CuDriver.cuMemFreeHost));
    }

    /// <summary>Sets <paramref name="bytes"/> bytes at <paramref name="destination"/> to zero, ordered on <paramref name="stream"/>.</summary>
    public static void ZeroAsync(CudaContext context, DevicePtr destination, long bytes, CudaStream stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes == 0) return;
        RequireAddress(destination, nameof(destination));
        context.MakeCurrent();
        Check.Driver(CuDriver.cuMemsetD8Async(destination.Address, 0, (nuint)bytes, stream.Handle), nameof(CuDriver.cuMemsetD8Async));
    }

    /// <summary>Writes the 32-bit pattern <paramref name="bits"/> over <paramref name="words"/> words (4-byte aligned
    /// address), ordered on <paramref name="stream"/>: NaN poisoning of outputs in tests.</summary>
    public static void Fill32Async(CudaContext context, DevicePtr destination, uint bits, long words, CudaStream stream)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(words);
        if (words == 0) return;
        RequireAddress(destination, nameof(destination));
        if (destination.Address % 4 != 0) throw new ArgumentException($"Fill32Async needs a 4-byte aligned address, got {destination}.", nameof(destination));
        context.MakeCurrent();
        Check.Driver(CuDriver.cuMemsetD32Async(destination.Address, bits, (nuint)words, stream.Handle), nameof(CuDriver.cuMemsetD32Async));
    }

    private static void RequireAddress(DevicePtr p, string name)
    {
        if (p.IsNull) throw new ArgumentException("device address is null", name);
    }
}
