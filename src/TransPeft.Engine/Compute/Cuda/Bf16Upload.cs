using TransPeft.Cuda;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// Brings a frozen parameter to the device as bf16, in bounded chunks through one small staging buffer (page-locked
/// on a GPU: <see cref="IComputeDevice.AllocateHost"/>). A lazy parameter (<see cref="Parameter.CheckpointTensor"/>)
/// that nothing has materialised is read straight from the memory-mapped checkpoint: a BF16 tensor's bytes go up as
/// they are, an F32/F16/F64 one is converted chunk by chunk. Either way no fp32 copy of the tensor is made on the
/// host, and the values, their rounding (to nearest even) and the non-finite check are those of an eager load.
/// </summary>
/// <param name="chunkElements">Elements per chunk (tests use odd sizes to cross tensor boundaries).</param>
internal sealed unsafe class Bf16Upload(IComputeDevice device, int chunkElements = Bf16Upload.ChunkElements) : IDisposable
{
    /// <summary>Elements per chunk by default: 2 MiB of bf16, small enough to stay in cache while it is converted.</summary>
    public const int ChunkElements = 1 << 20;

    private nint _staging;        // AllocateHost memory (page-locked on a GPU)
    private int _stagingElements;

    /// <summary>Copies <paramref name="p"/> in bf16 to <paramref name="destination"/> (room for p.Length bf16 values).</summary>
    public void Upload(DevicePtr destination, Parameter p)
    {
        if (!p.IsMaterialised && p.CheckpointTensor is { } t && t.Owner.TryLease())
        {
            try { FromCheckpoint(destination, t, p.Length); }
            finally { t.Owner.EndLease(); }
            return;
        }
        var data = p.Data;
        for (int start = 0; start < data.Length; start += chunkElements)
        {
            int n = Math.Min(chunkElements, data.Length - start);
            var bits = Staging(n);
            {
                // Values already in memory were checked when they were read; only the rounding is done here.
                fixed (float* source = &data[start])
                fixed (ushort* target = bits)
                    BFloat16.FromFloats((byte*)source, SafetensorsDType.F32, target, n);
            }
            device.Upload<ushort>(destination.OffsetBytes((long)start * 2), bits);
        }
    }

    private void FromCheckpoint(DevicePtr destination, CheckpointTensor t, int length)
    {
        for (int start = 0; start < length; start += chunkElements)
        {
            int n = Math.Min(chunkElements, length - start);
            var target = destination.OffsetBytes((long)start * 2);
            if (t.DType == SafetensorsDType.BF16)
            {
                device.Upload(target, t.RawBf16(start, n)); // the file's bytes are already what the device wants
                continue;
            }
            var bits = Staging(n);
            t.ConvertToBf16(start, bits);
            device.Upload<ushort>(target, bits);
        }
    }

    /// <summary>n elements of staging; the buffer grows to the largest chunk asked for (small tensors, such as an
    /// adapter's, never cost a full chunk of page-locked memory).</summary>
    private Span<ushort> Staging(int n)
    {
        if (_stagingElements < n)
        {
            device.FreeHost(_staging);
            _staging = 0;
            _stagingElements = 0;
            _staging = device.AllocateHost(2L * n);
            _stagingElements = n;
        }
        return new Span<ushort>((void*)_staging, n);
    }

    public void Dispose()
    {
        device.FreeHost(_staging);
        _staging = 0;
    }
}
