using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Compute.Cuda;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>A device that does nothing (downloads read zeros) and allocates nothing on the managed heap, so the
/// managed allocations of the backend's own host code can be counted.</summary>
internal sealed class NullDevice : IComputeDevice
{
    private ulong _next = 0x1000_0000;

    public string Name => "null device";
    public int MultiprocessorCount => 4;
    public bool SupportsGraphs => false;
    public int Allocations { get; private set; }
    public int Launches { get; private set; }
    /// <summary>Allocations not freed yet (tests: what is still held).</summary>
    public int Live { get; private set; }

    public DevicePtr Allocate(long bytes)
    {
        Allocations++;
        Live++;
        var p = new DevicePtr(_next);
        _next += (ulong)(bytes + 4096) / 256 * 256;
        return p;
    }

    public void Free(DevicePtr ptr) { if (!ptr.IsNull) Live--; }
    public void Launch(KernelId kernel, LaunchShape shape, ReadOnlySpan<KernelArgument> args)
    {
        KernelCatalog.CheckArguments(kernel, args);
        Launches++;
    }
    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, DevicePtr a, int lda, DevicePtr b, int ldb,
        float beta, DevicePtr c, int ldc, CudaDataType abType, CudaDataType cType) { }
    public void Zero(DevicePtr ptr, long bytes) { }
    // Host staging memory is real (the model writes its step values into it); device memory is not.
    public unsafe nint AllocateHost(long bytes) => (nint)System.Runtime.InteropServices.NativeMemory.AllocZeroed((nuint)Math.Max(bytes, 1));
    public unsafe void FreeHost(nint host) => System.Runtime.InteropServices.NativeMemory.Free((void*)host);
    public void UploadAsync(DevicePtr destination, nint source, long bytes) { }
    public void Upload<T>(DevicePtr destination, ReadOnlySpan<T> source) where T : unmanaged { }
    public void Download<T>(Span<T> destination, DevicePtr source) where T : unmanaged => destination.Clear();
    public unsafe void DownloadAsync(nint destination, DevicePtr source, long bytes) => new Span<byte>((void*)destination, checked((int)bytes)).Clear();
    public void Synchronize() { }
    public void PushRange(string name) { }
    public void PopRange() { }
    public void BeginCapture() => throw new NotSupportedException();
    public IDeviceGraph EndCapture() => throw new NotSupportedException();
    public void AbortCapture() { }
    public void Dispose() { }
}
