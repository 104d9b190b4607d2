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
/// semantics (<see cref="HostGemm"/>). Slow, single stream, synchronous, no graphs: for CI and debugging; what only
/// hardware shows (timing, races hidden by the emulator's barrier ordering, tensor-core rounding) is left to a GPU.
/// </summary>
internal sealed unsafe class HostEmulatedDevice(EmulatedKernelLibrary library, int multiprocessorCount = 4) : IComputeDevice
{
    /// <summary>Live allocations by address, kept sorted for the pointer-argument check.</summary>
    private readonly SortedList<ulong, long> _allocations = [];
    private int _rangeDepth;
    private Action<DevicePtr, long, string>? _requireInside;

    public string Name => $"cuda-emulated (kernels/*.cu compiled for the host: {library.Path})";
    public int MultiprocessorCount { get; } = multiprocessorCount;
    public bool SupportsGraphs => false;

    /// <summary>Allocations made so far (tests: a step makes none).</summary>
    internal int AllocationCount { get; private set; }

    public DevicePtr Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        long size = Math.Max(bytes, 256);
        var p = NativeMemory.AlignedAlloc((nuint)size, 256);
        new Span<byte>(p, checked((int)size)).Fill(0xFF);
        _allocations.Add((ulong)p, size);
        AllocationCount++;
        return new DevicePtr((ulong)p);
    }

    public void Free(DevicePtr ptr)
    {
        if (ptr.IsNull) return;
        if (!_allocations.Remove(ptr.Address)) throw new ArgumentException($"{ptr} was not allocated by this device");
        NativeMemory.AlignedFree((void*)ptr.Address);
    }

    /// <summary>Throws unless [p, p + bytes) lies inside one allocation.</summary>
    internal void RequireInside(DevicePtr p, long bytes, string what)
    {
        if (!IsInside(p, bytes)) throw new InvalidOperationException($"{what}: {bytes} bytes at {p} are not inside one device allocation");
    }

    private bool IsInside(DevicePtr p, long bytes)
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

    public void Launch(KernelId kernel, LaunchShape shape, ReadOnlySpan<KernelArgument> args)
    {
        KernelCatalog.CheckArguments(kernel, args);
        foreach (var a in args)
            if (a.Kind == ArgKind.Ptr && !a.AsPtr.IsNull && !IsInside(a.AsPtr, 0)) RequireInside(a.AsPtr, 0, $"{KernelCatalog.Get(kernel).Name} pointer argument");
        fixed (KernelArgument* a = args)
        {
            // KernelArgument.Value sits at offset 0: a pointer to the struct is the pointer the trampoline reads from.
            void** pointers = stackalloc void*[args.Length];
            for (int i = 0; i < args.Length; i++) pointers[i] = a + i;
            library.Launch(kernel, shape, pointers, args.Length);
        }
    }

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, DevicePtr a, int lda, DevicePtr b, int ldb,
        float beta, DevicePtr c, int ldc, CudaDataType abType, CudaDataType cType)
    {
        // The same mapping CublasHandle.Gemm uses; then cuBLAS's column-major call, computed on the host.
        var g = ColumnMajorGemm.FromRowMajor(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        HostGemm.Run(g, alpha, beta, abType, cType, _requireInside ??= RequireInside); // one delegate, not one per GEMM
    }

    public void Zero(DevicePtr ptr, long bytes)
    {
        RequireInside(ptr, bytes, "memset");
        new Span<byte>((void*)ptr.Address, checked((int)bytes)).Clear();
    }

    public void Upload<T>(DevicePtr destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(source);
        RequireInside(destination, bytes.Length, "upload");
        bytes.CopyTo(new Span<byte>((void*)destination.Address, bytes.Length));
    }

    public void Download<T>(Span<T> destination, DevicePtr source) where T : unmanaged
    {
        var bytes = MemoryMarshal.AsBytes(destination);
        RequireInside(source, bytes.Length, "download");
        new ReadOnlySpan<byte>((void*)source.Address, bytes.Length).CopyTo(bytes);
    }

    public nint AllocatePinned(long bytes) => (nint)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);

    public void FreePinned(nint pointer) => NativeMemory.AlignedFree((void*)pointer);

    // The emulator runs every launch when it is queued, so a queued copy may run at once too.
    public void UploadAsync(DevicePtr destination, nint source, long bytes)
    {
        RequireInside(destination, bytes, "async upload");
        Buffer.MemoryCopy((void*)source, (void*)destination.Address, bytes, bytes);
    }

    public void DownloadAsync(nint destination, DevicePtr source, long bytes)
    {
        RequireInside(source, bytes, "async download");
        Buffer.MemoryCopy((void*)source.Address, (void*)destination, bytes, bytes);
    }

    public void Synchronize() { }

    public void PushRange(string name) => _rangeDepth++;

    public void PopRange()
    {
        if (--_rangeDepth < 0) throw new InvalidOperationException("NVTX range popped more often than pushed");
    }

    public void BeginCapture() => throw new NotSupportedException("the cuda-emulated device records no graphs");
    public IDeviceGraph EndCapture() => throw new NotSupportedException("the cuda-emulated device records no graphs");
    public void AbortCapture() { }

    public void Dispose()
    {
        foreach (var p in _allocations.Keys) NativeMemory.AlignedFree((void*)p);
        _allocations.Clear();
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
