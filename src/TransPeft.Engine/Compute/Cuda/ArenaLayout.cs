namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// Lays tensors out one after another in a single allocation, each start aligned to <see cref="Alignment"/>
/// bytes (the vectorised kernels and the tensor-core attention want 16, cuBLAS is fastest from 256). Pure
/// bookkeeping: the device memory is allocated once for <see cref="TotalBytes"/> and every tensor is then
/// <c>base + offset</c>, so a training step allocates nothing.
/// </summary>
internal sealed class ArenaLayout
{
    public const int Alignment = 256;

    private readonly List<ArenaRegion> _regions = [];

    public IReadOnlyList<ArenaRegion> Regions => _regions;

    /// <summary>Bytes up to the end of the last region.</summary>
    public long TotalBytes { get; private set; }

    public ArenaRegion Add(string name, long elements, int elementSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(elementSize);
        long offset = AlignUp(TotalBytes);
        var r = new ArenaRegion(name, offset, elements, elementSize);
        _regions.Add(r);
        TotalBytes = offset + checked(elements * elementSize);
        return r;
    }

    public static long AlignUp(long bytes) => (bytes + Alignment - 1) / Alignment * Alignment;
}
