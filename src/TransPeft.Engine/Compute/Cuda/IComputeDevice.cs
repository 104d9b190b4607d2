using TransPeft.Cuda;
using TransPeft.Cuda.Native;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// What the CUDA backend needs from a GPU: memory, kernel launches, cuBLAS GEMMs, copies at the step
/// boundaries, NVTX ranges and graph capture, all ordered on ONE stream. <see cref="CudaDevice"/> is the real
/// thing; the tests also drive the same model code through an emulated device on the CPU, which checks every
/// launch against the kernels' contracts and computes what the kernels would.
/// </summary>
internal interface IComputeDevice : IDisposable
{
    /// <summary>For messages: the GPU's name and architecture.</summary>
    string Name { get; }

    int MultiprocessorCount { get; }

    /// <summary>Device memory, 256-byte aligned, contents undefined. Never called while a step runs.</summary>
    DevicePtr Allocate(long bytes);

    void Free(DevicePtr ptr);

    /// <summary>Queues a kernel. The arguments must match <see cref="KernelCatalog"/>'s parameter list.</summary>
    void Launch(KernelId kernel, LaunchShape shape, ReadOnlySpan<KernelArgument> args);

    /// <summary>Queues a row-major GEMM <c>C[m,n] = alpha·op(A)·op(B) + beta·C</c> with fp32 accumulation (see
    /// <see cref="CublasHandle.Gemm"/>). With beta = 0, C is not read.</summary>
    void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, DevicePtr a, int lda, DevicePtr b, int ldb,
        float beta, DevicePtr c, int ldc, CudaDataType abType, CudaDataType cType);

    /// <summary>Queues a memset to zero.</summary>
    void Zero(DevicePtr ptr, long bytes);

    /// <summary>Host memory for <see cref="UploadAsync"/> (page-locked on a GPU: an asynchronous copy needs it), valid
    /// until <see cref="FreeHost"/> or the device's disposal. Never called while a step runs or a graph is captured.</summary>
    nint AllocateHost(long bytes);

    void FreeHost(nint host);

    /// <summary>
    /// Queues a host → device copy of <paramref name="bytes"/> from <paramref name="source"/> (inside memory from
    /// <see cref="AllocateHost"/>). The host bytes are read when the copy RUNS, and in a captured graph at every replay:
    /// the host may rewrite them only once the stream is past the copy (after a <see cref="Download{T}"/> or
    /// <see cref="Synchronize"/>). This is how per-step values reach a replayed graph without a synchronization.
    /// </summary>
    void UploadAsync(DevicePtr destination, nint source, long bytes);

    /// <summary>Waits for queued work, then copies host → device; complete on return. Not allowed while capturing.</summary>
    void Upload<T>(DevicePtr destination, ReadOnlySpan<T> source) where T : unmanaged;

    /// <summary>Waits for queued work, then copies device → host; complete on return. Not allowed while capturing.</summary>
    void Download<T>(Span<T> destination, DevicePtr source) where T : unmanaged;

    /// <summary>Queues a device → host copy of <paramref name="bytes"/> into memory from <see cref="AllocateHost"/>, ordered
    /// with the launches; the host bytes are valid after <see cref="Synchronize"/>. Not while capturing.</summary>
    void DownloadAsync(nint destination, DevicePtr source, long bytes);

    /// <summary>Waits for everything queued (and surfaces asynchronous errors).</summary>
    void Synchronize();

    /// <summary>NVTX range (Nsight timeline); a no-op without an NVTX library.</summary>
    void PushRange(string name);

    void PopRange();

    /// <summary>True when <see cref="BeginCapture"/> records CUDA graphs.</summary>
    bool SupportsGraphs { get; }

    /// <summary>Starts recording instead of running (thread-local capture mode).</summary>
    void BeginCapture();

    /// <summary>Ends the recording and returns the instantiated graph.</summary>
    IDeviceGraph EndCapture();

    /// <summary>Ends a capture that failed half way and discards it.</summary>
    void AbortCapture();
}

