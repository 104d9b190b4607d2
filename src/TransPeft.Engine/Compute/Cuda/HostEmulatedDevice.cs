using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// <c>--device cuda-emulated</c>: the unchanged CUDA backend (<see cref="CudaTransformer"/>: arenas, launch planning,
/// argument packing, GEMM shapes, the order of the backward) driving the REAL kernels/*.cu, compiled for the host
/// (<see cref="EmulatedKernelLibrary"/>). Device memory is host memory, so a device pointer is the address the
/// host-compiled kernel dereferences; fresh memory is 0xFF bytes (NaN in bf16 and fp32), so reading what nothing wrote
/// shows up. Every launch is checked against <see cref="KernelCatalog"/> and every pointer argument must lie inside an
/// allocation (a wild pointer would otherwise crash the process). cuBLAS GEMMs are computed here with cuBLAS's
/// semantics (<see cref="HostGemm"/>). Graphs are captured and replayed with the driver's semantics
/// (<see cref="EmulatedStreamCapture"/>: arguments copied at capture, no allocation or synchronous call while capturing),
/// so a graph keyed too loosely shows up as a wrong result here. Slow, single stream, synchronous: for CI and debugging;
/// what only hardware shows (timing, races hidden by the emulator's barrier ordering, tensor-core rounding) is left to a GPU.
/// </summary>
/// <param name="supportsGraphs">False: <see cref="SupportsGraphs"/> is false and capture is refused, so models run
/// every step with plain launches (the path a GPU takes when graphs are off).</param>
internal sealed unsafe class HostEmulatedDevice(EmulatedKernelLibrary library, EmulatedMemory memory, int multiprocessorCount = 4, bool supportsGraphs = true) : IComputeDevice
{
    /// <summary>This device's own allocations (freed with it); the memory itself is the backend's, as a GPU's is the context's.</summary>
    private readonly HashSet<ulong> _own = [];
    private readonly EmulatedStreamCapture _capture = new("cuda-emulated");
    private readonly EmulatedHostMemory _host = new();
    private int _rangeDepth;
    private Action<DevicePtr, long, string>? _requireInside;

    public string Name => $"cuda-emulated (kernels/*.cu compiled for the host: {library.Path})";
    public int MultiprocessorCount { get; } = multiprocessorCount;
    public bool SupportsGraphs { get; } = supportsGraphs;

    /// <summary>Graphs captured so far (tests).</summary>
    internal int GraphCaptures => _capture.Captures;

    /// <summary>Allocations made so far by this device (tests: a step makes none).</summary>
    internal int AllocationCount { get; private set; }

    /// <summary>The memory every device of the backend shares (a pointer from one device is valid on all).</summary>
    internal EmulatedMemory Memory => memory;

    public DevicePtr Allocate(long bytes)
    {
        _capture.RequireNotCapturing("cuMemAlloc");
        var p = memory.Allocate(bytes);
        _own.Add(p.Address);
        AllocationCount++;
        return p;
    }

    public void Free(DevicePtr ptr)
    {
        if (ptr.IsNull) return;
        _capture.RequireNotCapturing("cuMemFree");
        if (!_own.Remove(ptr.Address)) throw new ArgumentException($"{ptr} was not allocated by this device");
        memory.Free(ptr);
    }

    /// <summary>Throws unless [p, p + bytes) lies inside one allocation (of any device of the backend).</summary>
    internal void RequireInside(DevicePtr p, long bytes, string what) => memory.RequireInside(p, bytes, what);

    public void Launch(KernelId kernel, LaunchShape shape, ReadOnlySpan<KernelArgument> args)
    {
        KernelCatalog.CheckArguments(kernel, args);
        foreach (var a in args)
            if (a.Kind == ArgKind.Ptr && !a.AsPtr.IsNull && !memory.IsInside(a.AsPtr, 0)) RequireInside(a.AsPtr, 0, $"{KernelCatalog.Get(kernel).Name} pointer argument");
        if (_capture.Active)
        {
            RecordLaunch(kernel, shape, args.ToArray());
            return;
        }
        fixed (KernelArgument* a = args)
        {
            // KernelArgument.Value sits at offset 0: a pointer to the struct is the pointer the trampoline reads from.
            void** pointers = stackalloc void*[args.Length];
            for (int i = 0; i < args.Length; i++) pointers[i] = a + i;
            library.Launch(kernel, shape, pointers, args.Length);
        }
    }

    // The recording helpers hold the lambdas: a lambda capturing a method's parameters allocates its closure when the
    // method is entered, so the eager paths above and below stay free of managed allocations (KvDecoderTests measure it).

    /// <summary>cuLaunchKernel copies the argument values into the graph node: so does the record.</summary>
    private void RecordLaunch(KernelId kernel, LaunchShape shape, KernelArgument[] copy) => _capture.TryRecord(() => Launch(kernel, shape, copy));

    private void RecordGemm(bool transA, bool transB, int m, int n, int k, float alpha, DevicePtr a, int lda, DevicePtr b, int ldb,
        float beta, DevicePtr c, int ldc, CudaDataType abType, CudaDataType cType) =>
        _capture.TryRecord(() => Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, abType, cType));

    private void RecordZero(DevicePtr ptr, long bytes) => _capture.TryRecord(() => Zero(ptr, bytes));

    /// <summary>A graph's memcpy node reads the host bytes when it runs: the record keeps the address, not the bytes.</summary>
    private void RecordUploadAsync(DevicePtr destination, nint source, long bytes) => _capture.TryRecord(() => UploadAsync(destination, source, bytes));

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, DevicePtr a, int lda, DevicePtr b, int ldb,
        float beta, DevicePtr c, int ldc, CudaDataType abType, CudaDataType cType)
    {
        // The same mapping CublasHandle.Gemm uses; then cuBLAS's column-major call, computed on the host.
        if (_capture.Active)
        {
            RecordGemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, abType, cType);
            return;
        }
        var g = ColumnMajorGemm.FromRowMajor(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        HostGemm.Run(g, alpha, beta, abType, cType, _requireInside ??= RequireInside); // one delegate, not one per GEMM
    }

    public void Zero(DevicePtr ptr, long bytes)
    {
        RequireInside(ptr, bytes, "memset");
        if (_capture.Active)
        {
            RecordZero(ptr, bytes);
            return;
        }
        new Span<byte>((void*)ptr.Address, checked((int)bytes)).Clear();
    }

    public nint AllocateHost(long bytes) => _host.Allocate(bytes, _capture);

    public void FreeHost(nint host) => _host.Free(host, _capture);

    public void UploadAsync(DevicePtr destination, nint source, long bytes)
    {
        var from = _host.Source(source, bytes);
        RequireInside(destination, bytes, "asynchronous upload");
        if (_capture.Active)
        {
            RecordUploadAsync(destination, source, bytes);
            return;
        }
        from.CopyTo(new Span<byte>((void*)destination.Address, (int)bytes));
    }

    // The emulator runs every launch when it is queued, so a queued copy back runs at once too.
    public void DownloadAsync(nint destination, DevicePtr source, long bytes)
    {
        _capture.RequireNotCapturing("cuMemcpyDtoHAsync");
        _host.Source(destination, bytes);
        RequireInside(source, bytes, "async download");
        Buffer.MemoryCopy((void*)source.Address, (void*)destination, bytes, bytes);
    }

    public void Upload<T>(DevicePtr destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        _capture.RequireNotCapturing("a synchronous host-to-device copy");
        var bytes = MemoryMarshal.AsBytes(source);
        RequireInside(destination, bytes.Length, "upload");
        bytes.CopyTo(new Span<byte>((void*)destination.Address, bytes.Length));
    }

    public void Download<T>(Span<T> destination, DevicePtr source) where T : unmanaged
    {
        _capture.RequireNotCapturing("a synchronous device-to-host copy");
        var bytes = MemoryMarshal.AsBytes(destination);
        RequireInside(source, bytes.Length, "download");
        new ReadOnlySpan<byte>((void*)source.Address, bytes.Length).CopyTo(bytes);
    }

    public void Synchronize() => _capture.RequireNotCapturing("cuStreamSynchronize");

    public void PushRange(string name) => _rangeDepth++;

    public void PopRange()
    {
        if (--_rangeDepth < 0) throw new InvalidOperationException("NVTX range popped more often than pushed");
    }

    public void BeginCapture()
    {
        if (!SupportsGraphs) throw new NotSupportedException("this cuda-emulated device was opened without graph support");
        _capture.Begin();
    }

    public IDeviceGraph EndCapture() => _capture.End();
    public void AbortCapture() => _capture.Abort();

    public void Dispose()
    {
        _capture.Abort();
        _host.Dispose();
        foreach (var p in _own) memory.Free(new DevicePtr(p));
        _own.Clear();
    }
}

/// <summary>
/// The cuda-emulated backend's device memory: host memory handed out 256-byte aligned and filled with 0xFF (NaN in
/// bf16 and fp32), shared by every <see cref="HostEmulatedDevice"/> of one backend as a GPU's memory is shared by the
/// streams of its context (the session's one copy of the base weights is read by every model's device). Thread-safe.
/// </summary>
internal sealed unsafe class EmulatedMemory
{
    /// <summary>Live allocations by address, kept sorted for the pointer-argument check.</summary>
    private readonly SortedList<ulong, long> _allocations = [];

    /// <summary>Bytes allocated and not yet freed (tests: what a session really holds).</summary>
    public long LiveBytes { get { lock (_allocations) return _allocations.Values.Sum(); } }

    public DevicePtr Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        long size = Math.Max(bytes, 256);
        var p = NativeMemory.AlignedAlloc((nuint)size, 256);
        new Span<byte>(p, checked((int)size)).Fill(0xFF);
        lock (_allocations) _allocations.Add((ulong)p, size);
        return new DevicePtr((ulong)p);
    }

    public void Free(DevicePtr ptr)
    {
        lock (_allocations)
            if (!_allocations.Remove(ptr.Address)) throw new ArgumentException($"{ptr} is not an allocation of this emulated device memory");
        NativeMemory.AlignedFree((void*)ptr.Address);
    }

    /// <summary>Throws unless [p, p + bytes) lies inside one allocation.</summary>
    public void RequireInside(DevicePtr p, long bytes, string what)
    {
        if (!IsInside(p, bytes)) throw new InvalidOperationException($"{what}: {bytes} bytes at {p} are not inside one device allocation");
    }

    /// <summary>Whether [p, p + bytes) lies inside one allocation (allocation-free: the hot path of every launch).</summary>
    public bool IsInside(DevicePtr p, long bytes)
    {
        lock (_allocations)
        {
            var keys = _allocations.Keys;
            int lo = 0, hi = keys.Count - 1, found = -1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >> 1;
                if (keys[mid] <= p.Address) { found = mid; lo = mid + 1; }
                else hi = mid - 1;
            }
            return found >= 0 && p.Address - keys[found] + (ulong)bytes <= (ulong)_allocations.Values[found];
        }
    }
}

/// <summary>
/// <c>cublasGemmEx</c> computed on the host, with its semantics: column-major operands, op(A)/op(B) from the transpose
/// flags, leading dimensions, bf16 or fp32 operands widened to fp32, CUBLAS_COMPUTE_32F accumulation, alpha and beta in
/// fp32, C not read when beta = 0 (so a NaN-poisoned output stays harmless), and the result rounded to nearest even
/// when C is bf16 (IO/BFloat16). Only the order of the fp32 sums differs from a GPU's (it differs between GPUs too).
/// </summary>
internal static unsafe class HostGemm
{
    [ThreadStatic] private static float[]? t_rows;
    [ThreadStatic] private static float[]? t_col;

    public static void Run(ColumnMajorGemm g, float alpha, float beta, CudaDataType abType, CudaDataType cType, Action<DevicePtr, long, string> requireInside)
    {
        if (abType is not (CudaDataType.R16BF or CudaDataType.R32F) || cType is not (CudaDataType.R16BF or CudaDataType.R32F))
            throw new NotSupportedException($"GEMM types {abType} -> {cType}");
        int m = g.M, n = g.N, k = g.K;
        bool ta = g.TransA == CublasOperation.T, tb = g.TransB == CublasOperation.T;
        int ab = abType == CudaDataType.R16BF ? 2 : 4, cs = cType == CudaDataType.R16BF ? 2 : 4;
        if (m == 0 || n == 0) return;
        requireInside(g.C, Extent(m, n, g.Ldc) * cs, "GEMM output C");
        if (k > 0)
        {
            requireInside(g.A, Extent(ta ? k : m, ta ? m : k, g.Lda) * ab, "GEMM operand A");
            requireInside(g.B, Extent(tb ? n : k, tb ? k : n, g.Ldb) * ab, "GEMM operand B");
        }
        // op(A) row i and op(B) column j, each gathered into a contiguous fp32 vector of length k (in per-thread
        // buffers kept between calls, so a step on this device allocates nothing on the managed heap either).
        if (t_rows is null || t_rows.Length < (long)m * k) t_rows = new float[checked(m * k)];
        if (t_col is null || t_col.Length < k) t_col = new float[k];
        var rows = t_rows;
        var col = t_col;
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
                rows[(long)i * k + p] = Load(g.A, ta ? p + (long)i * g.Lda : i + (long)p * g.Lda, abType);
        for (int j = 0; j < n; j++)
        {
            for (int p = 0; p < k; p++) col[p] = Load(g.B, tb ? j + (long)p * g.Ldb : p + (long)j * g.Ldb, abType);
            for (int i = 0; i < m; i++)
            {
                float acc = TensorPrimitives.Dot(new ReadOnlySpan<float>(rows, i * k, k), col.AsSpan(0, k));
                long ci = i + (long)j * g.Ldc;
                float v = alpha * acc;
                if (beta != 0) v += beta * Load(g.C, ci, cType);
                if (cType == CudaDataType.R16BF) ((ushort*)g.C.Address)[ci] = BFloat16.FromSingle(v);
                else ((float*)g.C.Address)[ci] = v;
            }
        }
    }

    private static float Load(DevicePtr p, long index, CudaDataType t) =>
        t == CudaDataType.R16BF ? BFloat16.ToSingle(((ushort*)p.Address)[index]) : ((float*)p.Address)[index];

    private static long Extent(int rows, int cols, int ld) => rows == 0 || cols == 0 ? 0 : rows + (long)(cols - 1) * ld;
}
