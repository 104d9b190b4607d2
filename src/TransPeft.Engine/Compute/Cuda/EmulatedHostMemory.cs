using System.Runtime.InteropServices;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The "pinned" host memory of a device emulated on the host (<see cref="IComputeDevice.AllocateHost"/>): plain native
/// memory, tracked so that an asynchronous copy from anywhere else is refused as the driver would refuse (or silently
/// serialize) a copy from pageable memory, and freed with the device.
/// </summary>
internal sealed unsafe class EmulatedHostMemory : IDisposable
{
    private readonly Dictionary<nint, long> _blocks = [];

    /// <summary>Like the driver, refused while <paramref name="capture"/> records a graph.</summary>
    public nint Allocate(long bytes, EmulatedStreamCapture capture)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        capture.RequireNotCapturing("cuMemHostAlloc");
        var p = (nint)NativeMemory.Alloc((nuint)Math.Max(bytes, 1));
        _blocks.Add(p, bytes);
        return p;
    }

    public void Free(nint host, EmulatedStreamCapture capture)
    {
        if (host == 0) return;
        capture.RequireNotCapturing("cuMemFreeHost");
        if (!_blocks.Remove(host)) throw new ArgumentException($"host memory 0x{host:x} was not allocated by this device");
        NativeMemory.Free((void*)host);
    }

    /// <summary>The source of an asynchronous copy: [source, source + bytes) inside one block, as bytes.</summary>
    public ReadOnlySpan<byte> Source(nint source, long bytes)
    {
        // The usual case, a copy from the start of a block, is one lookup; an interior address falls back to the scan.
        if (_blocks.TryGetValue(source, out var block) && bytes <= block) return new ReadOnlySpan<byte>((void*)source, checked((int)bytes));
        foreach (var (start, length) in _blocks)
            if (source >= start && source - start + bytes <= length) return new ReadOnlySpan<byte>((void*)source, checked((int)bytes));
        throw new ArgumentException($"an asynchronous copy needs host memory from AllocateHost; {bytes} bytes at 0x{source:x} are not inside one");
    }

    public void Dispose()
    {
        foreach (var p in _blocks.Keys) NativeMemory.Free((void*)p);
        _blocks.Clear();
    }
}
