using System.Runtime.InteropServices;
using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Compute.Cuda;

namespace TransPeft.Engine.Tests.Cuda.Emulation;

/// <summary>
/// A CPU stand-in for a GPU behind <see cref="IComputeDevice"/>, so that the CUDA backend's own code (arenas,
/// pointer arithmetic, launch shapes, argument packing, GEMM transposes and leading dimensions, the order of the
/// backward) runs and is checked on machines without a GPU. Every launch is checked against
/// <see cref="KernelCatalog"/> (argument kinds) and the launch rules of kernels/README.md; every access goes through
/// bounds-checked views of its allocation (a read or write past a tensor's allocation throws); fresh memory is
/// 0xFF bytes (NaN in bf16 and fp32), so reading what nothing wrote shows up as NaN.
/// <para>
/// With <see cref="Compute"/> the kernels' contracts are computed in plain C# (<see cref="EmulatedKernels"/>),
/// including bf16 rounding of every stored activation, so results match the GPU's up to fp32 summation order
/// (and the tensor-core attention's bf16 rounding of P, which this does not model). This checks the backend's
/// orchestration and the tests' tolerances; it does NOT check the real kernels: only a GPU run does.
/// </para>
/// </summary>
/// <remarks>Graphs are captured and replayed with the driver's semantics (<see cref="EmulatedStreamCapture"/>) unless
/// <c>graphs</c> is false.</remarks>
internal sealed unsafe class EmulatedDevice(bool compute = true, bool exactBf16 = false, int multiprocessorCount = 4, bool graphs = true) : IComputeDevice
{
    private const ulong FirstAddress = 0x7f00_0000_0000;
    private const ulong Gap = 1 << 16;

    private sealed class Allocation(ulong start, byte[] data, bool exact)
    {
        public ulong Base { get; } = start;
        public byte[] Data { get; } = data;
        /// <summary>Exact mode: the unrounded value of each bf16 slot (2-byte unit) last written as bf16.</summary>
        public float[] Shadow { get; } = exact ? new float[data.Length / 2] : [];
        public bool[] Valid { get; } = exact ? new bool[data.Length / 2] : [];
    }

    private readonly List<Allocation> _allocations = [];
    private readonly EmulatedStreamCapture _capture = new("emulated GPU");
    private readonly EmulatedHostMemory _host = new();
    private ulong _next = FirstAddress;
    private int _rangeDepth;

    public bool Compute { get; } = compute;

    /// <summary>bf16 tensors keep their unrounded fp32 values (see <see cref="Bf16View"/>): the model then runs at fp32
    /// precision through the backend's own buffers, launches and GEMMs.</summary>
    public bool ExactBf16 { get; } = exactBf16;
    public string Name => "emulated GPU (CPU)";
    public int MultiprocessorCount { get; } = multiprocessorCount;
    public bool SupportsGraphs { get; } = graphs;

    /// <summary>Graphs captured so far.</summary>
    public int GraphCaptures => _capture.Captures;

    /// <summary>Device allocations made so far (a step must make none).</summary>
    public int AllocationCount { get; private set; }

    /// <summary>Launches per kernel (tests: which kernels a step uses).</summary>
    public int[] LaunchCounts { get; } = new int[KernelCatalog.All.Count];

    public int GemmCount { get; private set; }
    public int UploadCount { get; private set; }
    public int DownloadCount { get; private set; }
    public int RangeDepth => _rangeDepth;

    public DevicePtr Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        _capture.RequireNotCapturing("cuMemAlloc");
        var data = new byte[Math.Max(bytes, 1)];
        data.AsSpan().Fill(0xFF);
        var p = _next;
        _allocations.Add(new Allocation(p, data, ExactBf16));
        _next = (p + (ulong)data.Length + Gap + 255) / 256 * 256;
        AllocationCount++;
        return new DevicePtr(p);
    }

    public void Free(DevicePtr ptr)
    {
        if (ptr.IsNull) return;
        _capture.RequireNotCapturing("cuMemFree");
        int i = _allocations.FindIndex(a => a.Base == ptr.Address);
        if (i < 0) throw new ArgumentException($"{ptr} is not the start of an allocation");
        _allocations.RemoveAt(i);
    }

    /// <summary>The bytes [p, p + bytes) of one allocation; throws when they are not all inside one.</summary>
    public Span<byte> Bytes(DevicePtr p, long bytes, string what = "access")
    {
        var (a, off) = Find(p, bytes, what);
        return a.Data.AsSpan((int)off, (int)bytes);
    }

    private (Allocation Allocation, long Offset) Find(DevicePtr p, long bytes, string what)
    {
        if (p.IsNull) throw new InvalidOperationException($"{what}: null device pointer");
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        // Allocations are sorted by address (they only grow); a binary search keeps validation cheap.
        int lo = 0, hi = _allocations.Count - 1, found = -1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (_allocations[mid].Base <= p.Address) { found = mid; lo = mid + 1; }
            else hi = mid - 1;
        }
        if (found >= 0)
        {
            var a = _allocations[found];
            ulong off = p.Address - a.Base;
            if (off < (ulong)a.Data.Length)
            {
                if (off + (ulong)bytes > (ulong)a.Data.Length)
                    throw new InvalidOperationException($"{what}: {bytes} bytes at {p} run {off + (ulong)bytes - (ulong)a.Data.Length} bytes past the end of the allocation at 0x{a.Base:x} ({a.Data.Length} bytes)");
                return (a, (long)off);
            }
        }
        throw new InvalidOperationException($"{what}: {p} is not inside any device allocation");
    }

    /// <summary>Forgets the exact values of [p, p + bytes): the bytes were rewritten as something other than bf16.</summary>
    private void Invalidate(Allocation a, long offset, long bytes)
    {
        if (!ExactBf16 || bytes == 0) return;
        long first = offset / 2, last = (offset + bytes + 1) / 2;
        a.Valid.AsSpan((int)first, (int)Math.Min(last, a.Valid.Length) - (int)first).Clear();
    }

    /// <summary>A bf16 tensor of <paramref name="count"/> elements at <paramref name="p"/>.</summary>
    public Bf16View Bf(DevicePtr p, long count, string what = "bf16")
    {
        var (a, off) = Find(p, count * 2, what);
        if (off % 2 != 0) throw new InvalidOperationException($"{what}: bf16 tensor at odd address {p}");
        var bits = MemoryMarshal.Cast<byte, ushort>(a.Data.AsSpan((int)off, (int)(count * 2)));
        return ExactBf16 ? new Bf16View(bits, a.Shadow.AsSpan((int)(off / 2), (int)count), a.Valid.AsSpan((int)(off / 2), (int)count)) : new Bf16View(bits, default, default);
    }

    private Span<byte> Raw(DevicePtr p, long bytes, string what)
    {
        var (a, off) = Find(p, bytes, what);
        Invalidate(a, off, bytes);
        return a.Data.AsSpan((int)off, (int)bytes);
    }

    public Span<float> F32(DevicePtr p, long count, string what = "fp32") => MemoryMarshal.Cast<byte, float>(Raw(p, count * 4, what));
    public Span<int> I32(DevicePtr p, long count, string what = "int32") => MemoryMarshal.Cast<byte, int>(Raw(p, count * 4, what));
    public Span<double> F64(DevicePtr p, long count, string what = "fp64") => MemoryMarshal.Cast<byte, double>(Raw(p, count * 8, what));

    public void Launch(KernelId kernel, LaunchShape shape, ReadOnlySpan<KernelArgument> args)
    {
        KernelCatalog.CheckArguments(kernel, args);
        EmulatedLaunchRules.Check(kernel, shape, args);
        foreach (var a in args)
            if (a.Kind == ArgKind.Ptr && !a.AsPtr.IsNull) Bytes(a.AsPtr, 0, $"{KernelCatalog.Get(kernel).Name} pointer argument");
        if (_capture.Active)
        {
            var copy = args.ToArray(); // the driver copies argument values into the graph node
            _capture.TryRecord(() => Launch(kernel, shape, copy));
            return;
        }
        LaunchCounts[(int)kernel]++;
        if (Compute) EmulatedKernels.Run(this, kernel, shape, args);
    }

    public void Gemm(bool transA, bool transB, int m, int n, int k, float alpha, DevicePtr a, int lda, DevicePtr b, int ldb,
        float beta, DevicePtr c, int ldc, CudaDataType abType, CudaDataType cType)
    {
        if (abType is not (CudaDataType.R16BF or CudaDataType.R32F) || cType is not (CudaDataType.R16BF or CudaDataType.R32F))
            throw new NotSupportedException($"GEMM types {abType} -> {cType}");
        // The same mapping CublasHandle.Gemm uses; then cuBLAS's column-major semantics, computed literally.
        if (_capture.TryRecord(() => Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, abType, cType))) return;
        var g = ColumnMajorGemm.FromRowMajor(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        GemmCount++;
        EmulatedKernels.GemmColumnMajor(this, g, alpha, beta, abType, cType, Compute);
    }

    public void Zero(DevicePtr ptr, long bytes)
    {
        Bytes(ptr, bytes, "memset");
        if (_capture.TryRecord(() => Zero(ptr, bytes))) return;
        Raw(ptr, bytes, "memset").Clear();
    }

    public nint AllocateHost(long bytes) => _host.Allocate(bytes, _capture);

    public void FreeHost(nint host) => _host.Free(host, _capture);

    /// <summary>Asynchronous copies so far (tests: one per step in graph mode).</summary>
    public int AsyncUploadCount { get; private set; }

    public void UploadAsync(DevicePtr destination, nint source, long bytes)
    {
        var from = _host.Source(source, bytes);
        Bytes(destination, bytes, "asynchronous upload");
        // A graph's memcpy node reads the host bytes when it runs: the record keeps the address, not the bytes.
        if (_capture.TryRecord(() => UploadAsync(destination, source, bytes))) return;
        AsyncUploadCount++;
        from.CopyTo(Raw(destination, bytes, "asynchronous upload"));
    }

    public void Upload<T>(DevicePtr destination, ReadOnlySpan<T> source) where T : unmanaged
    {
        _capture.RequireNotCapturing("a synchronous host-to-device copy");
        UploadCount++;
        MemoryMarshal.AsBytes(source).CopyTo(Raw(destination, (long)source.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>(), "upload"));
    }

    public void Download<T>(Span<T> destination, DevicePtr source) where T : unmanaged
    {
        _capture.RequireNotCapturing("a synchronous device-to-host copy");
        DownloadCount++;
        Bytes(source, (long)destination.Length * System.Runtime.CompilerServices.Unsafe.SizeOf<T>(), "download").CopyTo(MemoryMarshal.AsBytes(destination));
    }

    public unsafe void DownloadAsync(nint destination, DevicePtr source, long bytes)
    {
        _capture.RequireNotCapturing("cuMemcpyDtoHAsync");
        _host.Source(destination, bytes); // into AllocateHost memory only, as on a GPU and cuda-emulated
        Bytes(source, bytes, "async download").CopyTo(new Span<byte>((void*)destination, checked((int)bytes)));
    }

    public void Synchronize() => _capture.RequireNotCapturing("cuStreamSynchronize");

    public void PushRange(string name) => _rangeDepth++;

    public void PopRange()
    {
        if (--_rangeDepth < 0) throw new InvalidOperationException("NVTX range popped more often than pushed");
    }

    public void BeginCapture()
    {
        if (!SupportsGraphs) throw new NotSupportedException("this emulated device was made without graph support");
        _capture.Begin();
    }

    public IDeviceGraph EndCapture() => _capture.End();
    public void AbortCapture() => _capture.Abort();

    public void Dispose()
    {
        _capture.Abort();
        _allocations.Clear();
        _host.Dispose();
    }
}
