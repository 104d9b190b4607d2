using System.Runtime.InteropServices;

namespace TransPeft.Engine.IO;

/// <summary>
/// The open, memory-mapped checkpoint behind a model's lazy parameters (see <c>Model.Parameter</c>): it stays
/// mapped while any of them has not been materialised, and is unmapped when the last one is (or when the model is
/// garbage-collected). Mapping costs address space, not memory: the pages are the OS's file cache.
/// </summary>
internal sealed class CheckpointWeights
{
    private readonly SafetensorsCheckpoint _checkpoint;
    // Tensors not yet materialised plus readers at work (leases); the mapping closes when it reaches zero.
    private int _references;
    private int _materialised;

    public CheckpointWeights(SafetensorsCheckpoint checkpoint) { _checkpoint = checkpoint; }

    ~CheckpointWeights() => _checkpoint.Dispose();

    public string Directory => _checkpoint.Directory;

    /// <summary>Tensors read as fp32 so far (tests: a CUDA session over a checkpoint reads none).</summary>
    public int MaterialisedCount => Volatile.Read(ref _materialised);

    /// <summary>True while the file is mapped (some tensor is still lazy, or a reader holds a lease).</summary>
    public bool IsOpen => Volatile.Read(ref _references) > 0;

    /// <summary>A lazy source for <paramref name="name"/> (already checked to exist and hold floating-point values).</summary>
    public CheckpointTensor Tensor(string name)
    {
        var reader = _checkpoint.ReaderOf(name);
        reader.RequireFloatingPoint(name);
        Interlocked.Increment(ref _references);
        return new CheckpointTensor(this, reader, reader.GetInfo(name));
    }

    /// <summary>
    /// Keeps the mapping open while a reader works (an upload running while another thread materialises the last
    /// lazy tensor). False when it is closed already: every tensor is in fp32 then, so read those instead.
    /// </summary>
    public bool TryLease()
    {
        int r = Volatile.Read(ref _references);
        while (r > 0)
        {
            int seen = Interlocked.CompareExchange(ref _references, r + 1, r);
            if (seen == r) return true;
            r = seen;
        }
        return false;
    }

    /// <summary>Ends a <see cref="TryLease"/>.</summary>
    public void EndLease() => Release();

    /// <summary>One more tensor now lives in fp32 on the host.</summary>
    internal void Materialised()
    {
        Interlocked.Increment(ref _materialised);
        Release();
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0) return;
        _checkpoint.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>
/// One tensor of a memory-mapped checkpoint, read on demand: as fp32 (a parameter materialising), or as bf16 in
/// chunks for a device upload, with the same rounding (to nearest even, <see cref="BFloat16"/>) and the same
/// non-finite check and message as an eager load.
/// </summary>
internal sealed class CheckpointTensor(CheckpointWeights owner, SafetensorsReader reader, TensorInfo info)
{
    public CheckpointWeights Owner { get; } = owner;
    public TensorInfo Info { get; } = info;
    public string Path => reader.Path;
    public SafetensorsDType DType => Info.DType;

    /// <summary>What a non-finite value in this tensor is reported as (the eager loader's wording).</summary>
    public string What => $"tensor '{Info.Name}'";

    /// <summary>The whole tensor in fp32, checked finite (the mapping must still be open: the owner keeps it so).</summary>
    public float[] ReadFloat32()
    {
        var data = reader.ReadFloat32(Info.Name);
        NonFiniteValueException.ThrowIfAny(data, Path, What);
        return data;
    }

    /// <summary>Elements [start, start + count) of a BF16 tensor as they lie in the file, checked finite.</summary>
    public ReadOnlySpan<ushort> RawBf16(long start, int count)
    {
        if (DType != SafetensorsDType.BF16) throw new InvalidOperationException($"{Path}: tensor '{Info.Name}' is {DType}, not BF16");
        var bits = MemoryMarshal.Cast<byte, ushort>(reader.GetBytes(Info.Name, start * 2, checked(count * 2)));
        // A vector screen for the exponent-all-ones pattern; the scalar loop then finds the first such value.
        var exponent = new System.Numerics.Vector<ushort>(0x7F80);
        int i = 0, width = System.Numerics.Vector<ushort>.Count;
        for (; i + width <= bits.Length; i += width)
            if (System.Numerics.Vector.EqualsAny(new System.Numerics.Vector<ushort>(bits[i..]) & exponent, exponent)) break;
        for (; i < bits.Length; i++)
            if (BFloat16.IsNonFinite(bits[i])) throw new NonFiniteValueException(Path, What, start + i, BFloat16.ToSingle(bits[i]));
        return bits;
    }

    /// <summary>
    /// Elements [start, start + destination.Length) converted to bf16 into <paramref name="destination"/>
    /// (<see cref="BFloat16.FromFloats"/>: the eager load's fp32 value, rounded to nearest even), checked finite.
    /// A BF16 tensor needs no conversion: its callers read it with <see cref="RawBf16"/>.
    /// </summary>
    public unsafe void ConvertToBf16(long start, Span<ushort> destination)
    {
        int n = destination.Length, size = DType.ByteSize();
        var bytes = reader.GetBytes(Info.Name, start * size, checked(n * size));
        fixed (byte* source = bytes)
        fixed (ushort* target = destination)
        {
            long bad = BFloat16.FromFloats(source, DType, target, n);
            if (bad >= 0) throw new NonFiniteValueException(Path, What, start + bad, BFloat16.Load(source, DType, bad));
        }
    }
}
