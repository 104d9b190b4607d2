using TransPeft.Cuda;
using TransPeft.Cuda.Native;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The real GPU behind <see cref="IComputeDevice"/>: one non-blocking stream, one cuBLAS handle bound to it (with its
/// own workspace, so GEMMs are capturable), and the backend's compiled kernels. Memory comes from plain
/// <c>cuMemAlloc</c> (arenas are allocated once, so a pool buys nothing). One device per model: a cuBLAS handle
/// must not be used from two threads at once, and one stream keeps every operation of a step in order.
/// </summary>
internal sealed unsafe class CudaDevice : IComputeDevice
{
    private readonly CudaBackend _backend;
    private readonly CudaStream _stream;
    private readonly CublasHandle _blas;
    private readonly Dictionary<ulong, DeviceBuffer<byte>> _allocations = [];
    private readonly Dictionary<nint, PinnedHostBuffer<byte>> _hostAllocations = [];
    private bool _capturing;

    internal CudaDevice(CudaBackend backend)
    {
        _backend = backend;
        var ctx = backend.Context;
        _stream = ctx.CreateStream();
        try
        {
            _blas = new CublasHandle(ctx);
            _blas.SetStream(_stream);
            // Split-K partial sums of a bf16-output GEMM may otherwise be reduced in bf16; keep them fp32.
            _blas.SetMathMode(CublasMath.DisallowReducedPrecisionReduction);
        }
        catch
        {
            _stream.Dispose();
            throw;
        }
    }

    public CudaContext Context => _backend.Context;
    public CudaStream Stream => _stream;
    public string Name => _backend.Description;
    public int MultiprocessorCount => Context.MultiprocessorCount;
    public bool SupportsGraphs => true;

    /// <summary>Allocations made so far (tests: a step makes none).</summary>
    internal int AllocationCount { get; private set; }

    public DevicePtr Allocate(long bytes)
    {
        AllocationCount++;
        var buffer = Context.Allocate<byte>(Math.Max(bytes, 256));
        _allocations.Add(buffer.Ptr.Address, buffer);
        return buffer.Ptr;
    }

    public void Free(DevicePtr ptr)
    {
        if (ptr.IsNull) return;
        if (!_allocations.Remove(ptr.Address, out var buffer)) throw new ArgumentException($"{ptr} was not allocated by this device");
        _stream.Synchronize(); // kernels still queued may read it
        buffer.Dispose();
    }

    public void Launch(KernelId kernel, LaunchShape shape, ReadOnlySpan<KernelArgument> args)
    {
        KernelCatalog.CheckArguments(kernel, args);
        var function = _backend.Function(kernel);
        fixed (KernelArgument* a = args)
        {
            // KernelArgument.Value sits at offset 0: a pointer to the struct is the pointer the driver reads from.
            void** pointers = stackalloc void*[args.Length];
            for (int i = 0; i < args.Length; i++) pointers[i] = a + i;
            function.LaunchRaw(shape.Grid, shape.Block, shape.SharedBytes, _stream.Handle, pointers);
        }
    }

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, DevicePtr a, int lda, DevicePtr b, int ldb,
        float beta, DevicePtr c, int ldc, CudaDataType abType, CudaDataType cType) =>
        _blas.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, abType, cType);

    public void Zero(DevicePtr ptr, long bytes) => DeviceMemory.ZeroAsync(Context, ptr, bytes, _stream);

    public nint AllocateHost(long bytes)
    {
        RequireNotCapturing(nameof(AllocateHost));
        var buffer = new PinnedHostBuffer<byte>(Context, Math.Max(bytes, 1));
        var p = (nint)buffer.Pointer;
        _hostAllocations.Add(p, buffer);
        return p;
    }

    public void FreeHost(nint host)
    {
        if (host == 0) return;
        RequireNotCapturing(nameof(FreeHost));
        if (!_hostAllocations.Remove(host, out var buffer)) throw new ArgumentException($"host memory 0x{host:x} was not allocated by this device");
        _stream.Synchronize(); // a queued copy may still read it
        buffer.Dispose();
    }

    public void UploadAsync(DevicePtr destination, nint source, long bytes)
    {
        var (buffer, offset) = Pinned(source, bytes);
        DeviceMemory.CopyToDeviceAsync(Context, destination, buffer, offset, checked((int)bytes), _stream);
    }

    /// <summary>The pinned allocation holding [host, host + bytes) and the offset in it. An asynchronous copy must stay
    /// inside one: a pageable address would make the copy synchronous (and uncapturable), a foreign one would read garbage.</summary>
    private (PinnedHostBuffer<byte> Buffer, int Offset) Pinned(nint host, long bytes)
    {
        // The usual case, a copy from the start of a block, is one lookup; an interior address falls back to the scan.
        if (_hostAllocations.TryGetValue(host, out var block) && bytes <= block.Length) return (block, 0);
        foreach (var (start, buffer) in _hostAllocations)
            if (host >= start && host - start + bytes <= buffer.Length) return (buffer, (int)(host - start));
        throw new ArgumentException($"an asynchronous copy needs host memory from AllocateHost; {bytes} bytes at 0x{host:x} are not inside one");
    }

    public void Upload<T>(DevicePtr destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        RequireNotCapturing(nameof(Upload));
        _stream.Synchronize();
        DeviceMemory.CopyToDevice(Context, destination, source);
    }

    public void Download<T>(Span<T> destination, DevicePtr source) where T : unmanaged
    {
        RequireNotCapturing(nameof(Download));
        _stream.Synchronize();
        DeviceMemory.CopyToHost(Context, destination, source);
    }

    public void DownloadAsync(nint destination, DevicePtr source, long bytes)
    {
        RequireNotCapturing(nameof(DownloadAsync));
        var (buffer, offset) = Pinned(destination, bytes);
        DeviceMemory.CopyToHostAsync(Context, buffer, offset, checked((int)bytes), source, _stream);
    }

    public void Synchronize() => _stream.Synchronize();

    public void PushRange(string name) => Nvtx.Push(name);

    public void PopRange() => Nvtx.Pop();

    public void BeginCapture()
    {
        _stream.BeginCapture();
        _capturing = true;
    }

    public IDeviceGraph EndCapture()
    {
        _capturing = false;
        using var graph = _stream.EndCapture();
        return new CudaDeviceGraph(graph.Instantiate(), _stream);
    }

    public void AbortCapture()
    {
        if (!_capturing) return;
        _capturing = false;
        try { _stream.EndCapture().Dispose(); }
        catch (CudaException) { } // an invalidated capture ends with an error; the stream is usable again either way
    }

    private void RequireNotCapturing(string what)
    {
        if (_capturing) throw new InvalidOperationException($"{what} synchronizes with the host and cannot be part of a CUDA graph capture");
    }

    public void Dispose()
    {
        AbortCapture();
        try { _stream.Synchronize(); }
        catch (CudaException) { } // a failed kernel poisons the context; freeing is still attempted
        foreach (var b in _allocations.Values) b.Dispose();
        _allocations.Clear();
        foreach (var b in _hostAllocations.Values) b.Dispose();
        _hostAllocations.Clear();
        _blas.Dispose();
        _stream.Dispose();
    }

    private sealed class CudaDeviceGraph(CudaGraphExec exec, CudaStream stream) : IDeviceGraph
    {
        public void Launch() => exec.Launch(stream);
        public void Dispose() => exec.Dispose();
    }
}
