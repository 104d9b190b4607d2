using System.Runtime.InteropServices;
using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// One GPU and its primary context. The primary context is the one the CUDA runtime, cuBLAS and PyTorch share,
/// so mixing libraries in one process sees the same allocations. The driver keeps a "current context" per
/// thread; every wrapper calls <see cref="MakeCurrent"/> before it calls the driver, which costs a thread-static
/// compare when the context is current already, so any thread (a thread-pool continuation, a test runner's
/// worker) may use the objects.
/// </summary>
public sealed unsafe class CudaContext : IDisposable
{
    [ThreadStatic] private static nint t_current;
    private static readonly Lock s_initLock = new();
    private static bool s_initialized;

    private nint _handle;

    private CudaContext(int ordinal, int device, nint handle)
    {
        Ordinal = ordinal;
        Device = device;
        _handle = handle;
        t_current = 0;
        MakeCurrent();

        byte* name = stackalloc byte[256];
        Check.Driver(CuDriver.cuDeviceGetName(name, 256, device), nameof(CuDriver.cuDeviceGetName));
        Name = Marshal.PtrToStringUTF8((nint)name) ?? "";
        nuint total;
        Check.Driver(CuDriver.cuDeviceTotalMem_v2(&total, device), nameof(CuDriver.cuDeviceTotalMem_v2));
        TotalMemoryBytes = (long)total;
        ComputeCapability = (GetAttribute(CuDeviceAttribute.ComputeCapabilityMajor), GetAttribute(CuDeviceAttribute.ComputeCapabilityMinor));
        MultiprocessorCount = GetAttribute(CuDeviceAttribute.MultiprocessorCount);
        MaxSharedMemoryPerBlockOptin = GetAttribute(CuDeviceAttribute.MaxSharedMemoryPerBlockOptin);
        DriverVersion = GetDriverVersion();
    }

    /// <summary>The ordinal asked for (0 = first GPU).</summary>
    public int Ordinal { get; }

    /// <summary>The driver's <c>CUdevice</c>.</summary>
    public int Device { get; }

    /// <summary>The <c>CUcontext</c> handle.</summary>
    public nint Handle => _handle;

    public string Name { get; }
    public long TotalMemoryBytes { get; }
    public (int Major, int Minor) ComputeCapability { get; }

    /// <summary>The NVRTC target for this GPU, e.g. "sm_90".</summary>
    public string Arch => $"sm_{ComputeCapability.Major}{ComputeCapability.Minor}";

    public int MultiprocessorCount { get; }

    /// <summary>The most dynamic shared memory one block may opt into (227 KiB on H100).</summary>
    public int MaxSharedMemoryPerBlockOptin { get; }

    /// <summary>The driver's CUDA version as 1000*major + 10*minor (12020 = CUDA 12.2).</summary>
    public int DriverVersion { get; }

    /// <summary>Calls <c>cuInit</c> once per process (again after a failure). Throws <see cref="CudaException"/>
    /// naming CUDA_ERROR_NO_DEVICE on a machine without a GPU.</summary>
    public static void Initialize()
    {
        lock (s_initLock)
        {
            if (s_initialized) return;
            Check.Driver(CuDriver.cuInit(0), nameof(CuDriver.cuInit));
            s_initialized = true;
        }
    }

    /// <summary>The driver's CUDA version (no <c>cuInit</c> needed).</summary>
    public static int GetDriverVersion()
    {
        int v;
        Check.Driver(CuDriver.cuDriverGetVersion(&v), nameof(CuDriver.cuDriverGetVersion));
        return v;
    }

    public static int DeviceCount
    {
        get
        {
            Initialize();
            int n;
            Check.Driver(CuDriver.cuDeviceGetCount(&n), nameof(CuDriver.cuDeviceGetCount));
            return n;
        }
    }

    /// <summary>Retains the primary context of GPU <paramref name="ordinal"/> and makes it current on this thread.</summary>
    public static CudaContext Open(int ordinal = 0)
    {
        Initialize();
        int device;
        Check.Driver(CuDriver.cuDeviceGet(&device, ordinal), nameof(CuDriver.cuDeviceGet));
        nint ctx;
        Check.Driver(CuDriver.cuDevicePrimaryCtxRetain(&ctx, device), nameof(CuDriver.cuDevicePrimaryCtxRetain));
        try
        {
            return new CudaContext(ordinal, device, ctx);
        }
        catch
        {
            CuDriver.cuDevicePrimaryCtxRelease_v2(device);
            throw;
        }
    }

    /// <summary>Makes this context current on the calling thread, unless it already is.</summary>
    public void MakeCurrent()
    {
        var h = _handle;
        if (t_current == h) return;
        ObjectDisposedException.ThrowIf(h == 0, this);
        Check.Driver(CuDriver.cuCtxSetCurrent(h), nameof(CuDriver.cuCtxSetCurrent));
        t_current = h;
    }

    public int GetAttribute(CuDeviceAttribute attribute)
    {
        int v;
        Check.Driver(CuDriver.cuDeviceGetAttribute(&v, attribute, Device), nameof(CuDriver.cuDeviceGetAttribute));
        return v;
    }

    /// <summary>Waits for all work on the device to finish (and surfaces asynchronous errors).</summary>
    public void Synchronize()
    {
        MakeCurrent();
        Check.Driver(CuDriver.cuCtxSynchronize(), nameof(CuDriver.cuCtxSynchronize));
    }

    public (long FreeBytes, long TotalBytes) GetMemoryInfo()
    {
        MakeCurrent();
        nuint free, total;
        Check.Driver(CuDriver.cuMemGetInfo_v2(&free, &total), nameof(CuDriver.cuMemGetInfo_v2));
        return ((long)free, (long)total);
    }

    /// <summary>Allocates <paramref name="length"/> elements of device memory (uninitialised).</summary>
    public DeviceBuffer<T> Allocate<T>(long length) where T : unmanaged => DeviceBuffer<T>.Allocate(this, length);

    /// <summary>Stream-ordered allocation from the device's default pool (<c>cuMemAllocAsync</c>): capturable in
    /// graphs and cheap to repeat; freed on the same stream when disposed.</summary>
    public DeviceBuffer<T> AllocateAsync<T>(long length, CudaStream stream) where T : unmanaged => DeviceBuffer<T>.AllocateAsync(this, length, stream);

    public CudaStream CreateStream(bool nonBlocking = true) => new(this, nonBlocking);

    public CudaEvent CreateEvent(bool timing = true) => new(this, timing);

    public CudaModule LoadModule(byte[] cubin) => CudaModule.Load(this, cubin);

    public CudaMemoryPool DefaultMemoryPool => new(this);

    /// <summary>Starts the profiler's capture range (Nsight <c>--capture-range=cudaProfilerApi</c>).</summary>
    public void ProfilerStart()
    {
        MakeCurrent();
        Check.Driver(CuDriver.cuProfilerStart(), nameof(CuDriver.cuProfilerStart));
    }

    public void ProfilerStop()
    {
        MakeCurrent();
        Check.Driver(CuDriver.cuProfilerStop(), nameof(CuDriver.cuProfilerStop));
    }

    public override string ToString() => $"GPU {Ordinal}: {Name} ({Arch}, {TotalMemoryBytes / (1 << 20)} MiB, {MultiprocessorCount} SMs)";

    /// <summary>Releases this retain of the primary context (the context lives while anyone retains it).</summary>
    public void Dispose()
    {
        var h = Interlocked.Exchange(ref _handle, 0);
        if (h == 0) return;
        if (t_current == h)
        {
            CuDriver.cuCtxSetCurrent(0);
            t_current = 0;
        }
        Check.Driver(CuDriver.cuDevicePrimaryCtxRelease_v2(Device), nameof(CuDriver.cuDevicePrimaryCtxRelease_v2));
    }
}
