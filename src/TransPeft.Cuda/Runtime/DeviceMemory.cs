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

    /// <summary>Queues a copy of <paramref name="count"/> elements from <paramref name="source"/> (page-locked, starting at
    /// element <paramref name="offset"/>) to <paramref name="destination"/>, ordered on <paramref name="stream"/>. The
    /// host bytes are read when the copy runs (in a captured graph: at every replay), not when it is queued.</summary>
    public static void CopyToDeviceAsync<T>(CudaContext context, DevicePtr destination, PinnedHostBuffer<T> source, int offset, int count, CudaStream stream)
        where T : unmanaged
    {
        if (!PrepareAsyncCopy(context, source, offset, count, destination, nameof(destination), out T* host)) return;
        Check.Driver(CuDriver.cuMemcpyHtoDAsync_v2(destination.Address, host, (nuint)((long)count * sizeof(T)), stream.Handle),
            nameof(CuDriver.cuMemcpyHtoDAsync_v2));
    }

    /// <summary>Queues a copy of <paramref name="count"/> elements from <paramref name="source"/> into <paramref name="destination"/>
    /// (page-locked, starting at element <paramref name="offset"/>), ordered on <paramref name="stream"/>; the host
    /// elements are valid once the stream is past the copy (synchronize).</summary>
    public static void CopyToHostAsync<T>(CudaContext context, PinnedHostBuffer<T> destination, int offset, int count, DevicePtr source, CudaStream stream)
        where T : unmanaged
    {
        if (!PrepareAsyncCopy(context, destination, offset, count, source, nameof(source), out T* host)) return;
        Check.Driver(CuDriver.cuMemcpyDtoHAsync_v2(host, source.Address, (nuint)((long)count * sizeof(T)), stream.Handle),
            nameof(CuDriver.cuMemcpyDtoHAsync_v2));
    }

    /// <summary>The checks shared by the asynchronous copies: elements [offset, offset + count) inside the pinned
    /// buffer, a non-null device address, the context current. False when there is nothing to copy (count zero);
    /// otherwise <paramref name="host"/> is the address of element <paramref name="offset"/>.</summary>
    private static bool PrepareAsyncCopy<T>(CudaContext context, PinnedHostBuffer<T> pinned, int offset, int count, DevicePtr device, string deviceName, out T* host)
        where T : unmanaged
    {
        host = null;
        if ((uint)offset > (uint)pinned.Length || (uint)count > (uint)(pinned.Length - offset))
            throw new ArgumentOutOfRangeException(nameof(count), $"elements [{offset}, {offset + count}) are outside the pinned buffer of {pinned.Length}");
        if (count == 0) return false;
        RequireAddress(device, deviceName);
        context.MakeCurrent();
        host = (T*)pinned.Pointer + offset;
        return true;
    }

    private static void RequireAddress(DevicePtr p, string name)
    {
        if (p.IsNull) throw new ArgumentException("device address is null", name);
    }
}
