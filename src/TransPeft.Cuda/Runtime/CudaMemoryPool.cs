using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// The device's default memory pool, which serves <c>cuMemAllocAsync</c>. By default it returns freed memory to
/// the system at every synchronisation; raising <see cref="ReleaseThresholdBytes"/> keeps it, so stream-ordered
/// allocations in a loop stop hitting the OS.
/// </summary>
public sealed unsafe class CudaMemoryPool
{
    private readonly CudaContext _context;
    private readonly nint _pool;

    internal CudaMemoryPool(CudaContext context)
    {
        _context = context;
        context.MakeCurrent();
        nint pool;
        Check.Driver(CuDriver.cuDeviceGetDefaultMemPool(&pool, context.Device), nameof(CuDriver.cuDeviceGetDefaultMemPool));
        _pool = pool;
    }

    public long ReleaseThresholdBytes
    {
        get => (long)Get64(CuMemPoolAttribute.ReleaseThreshold);
        set => Set64(CuMemPoolAttribute.ReleaseThreshold, (ulong)value);
    }

    public long UsedBytes => (long)Get64(CuMemPoolAttribute.UsedMemCurrent);
    public long ReservedBytes => (long)Get64(CuMemPoolAttribute.ReservedMemCurrent);

    /// <summary>Releases unused reserved memory down to <paramref name="minBytesToKeep"/>.</summary>
    public void TrimTo(long minBytesToKeep)
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuMemPoolTrimTo(_pool, (nuint)minBytesToKeep), nameof(CuDriver.cuMemPoolTrimTo));
    }

    private ulong Get64(CuMemPoolAttribute attribute)
    {
        _context.MakeCurrent();
        ulong v;
        Check.Driver(CuDriver.cuMemPoolGetAttribute(_pool, attribute, &v), nameof(CuDriver.cuMemPoolGetAttribute));
        return v;
    }

    private void Set64(CuMemPoolAttribute attribute, ulong value)
    {
        _context.MakeCurrent();
        Check.Driver(CuDriver.cuMemPoolSetAttribute(_pool, attribute, &value), nameof(CuDriver.cuMemPoolSetAttribute));
    }
}
