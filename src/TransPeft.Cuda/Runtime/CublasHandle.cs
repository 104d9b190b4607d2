using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// A cuBLAS handle bound to one stream, with a workspace of our own (cuBLAS would otherwise allocate one
/// lazily, which breaks graph capture). Order matters: <c>cublasSetStream_v2</c> resets the workspace to the
/// default, so <see cref="SetStream"/> re-applies ours right after.
/// <para>
/// GEMMs here take bf16 (or fp32) operands with fp32 accumulation (CUBLAS_COMPUTE_32F = 68), the heuristic
/// algorithm (CUBLAS_GEMM_DEFAULT = -1), and host-side alpha/beta. <see cref="Gemm"/> takes ROW-MAJOR shapes, the
/// layout of every tensor in the engine; <see cref="ColumnMajorGemm"/> explains the mapping to cuBLAS's
/// column-major convention.
/// </para>
/// </summary>
public sealed unsafe class CublasHandle : CudaResource
{
    /// <summary>32 MiB: what cuBLAS recommends on Hopper; plenty on older GPUs.</summary>
    public const long DefaultWorkspaceBytes = 32L << 20;

    private DeviceBuffer<byte>? _workspace;
    private CudaStream? _stream;

    public CublasHandle(CudaContext context, long workspaceBytes = DefaultWorkspaceBytes) : base(context, Create(context))
    {
        if (workspaceBytes > 0)
        {
            _workspace = context.Allocate<byte>(workspaceBytes);
            ApplyWorkspace();
        }
    }

    private static nint Create(CudaContext context)
    {
        context.MakeCurrent();
        nint h;
        Check.Cublas(Cublas.cublasCreate_v2(&h), nameof(Cublas.cublasCreate_v2));
        return h;
    }

    public CudaStream? Stream => _stream;

    /// <summary>cuBLAS's version as major*10000 + minor*100 + patch (12.4.5 = 120405).</summary>
    public int Version
    {
        get
        {
            int v;
            Check.Cublas(Cublas.cublasGetVersion_v2(Handle, &v), nameof(Cublas.cublasGetVersion_v2));
            return v;
        }
    }

    /// <summary>Queues later calls on <paramref name="stream"/> and re-applies the workspace (which setting the
    /// stream resets).</summary>
    public void SetStream(CudaStream stream)
    {
        Context.MakeCurrent();
        Check.Cublas(Cublas.cublasSetStream_v2(Handle, stream.Handle), nameof(Cublas.cublasSetStream_v2));
        _stream = stream;
        ApplyWorkspace();
    }

    public void SetMathMode(CublasMath mode) =>
        Check.Cublas(Cublas.cublasSetMathMode(Handle, mode), nameof(Cublas.cublasSetMathMode));

    private void ApplyWorkspace()
    {
        if (_workspace is null) return;
        Check.Cublas(Cublas.cublasSetWorkspace_v2(Handle, _workspace.Ptr.Address, (nuint)_workspace.SizeInBytes), nameof(Cublas.cublasSetWorkspace_v2));
    }

    /// <summary>
    /// Row-major <c>C[m, n] = alpha·op(A)[m, k]·op(B)[k, n] + beta·C</c>, fp32 accumulation.
    /// A is stored [m, k] (lda ≥ k), or [k, m] when <paramref name="transA"/>; B is stored [k, n] (ldb ≥ n), or
    /// [n, k] when <paramref name="transB"/>; C is [m, n] (ldc ≥ n). A linear layer Y = X·Wᵀ is
    /// <c>Gemm(false, true, BT, OC, C, 1, X, C, W, C, 0, Y, OC)</c>; beta = 1 accumulates (LoRA onto the base).
    /// </summary>
    public void Gemm(bool transA, bool transB, int m, int n, int k,
        float alpha, DevicePtr a, int lda, DevicePtr b, int ldb, float beta, DevicePtr c, int ldc,
        CudaDataType abType = CudaDataType.R16BF, CudaDataType cType = CudaDataType.R16BF)
    {
        var g = ColumnMajorGemm.FromRowMajor(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        Context.MakeCurrent();
        Check.Cublas(Cublas.cublasGemmEx(Handle, g.TransA, g.TransB, g.M, g.N, g.K,
            &alpha, g.A.Address, abType, g.Lda, g.B.Address, abType, g.Ldb,
            &beta, g.C.Address, cType, g.Ldc, CublasComputeType.Compute32F, CublasGemmAlgo.Default), nameof(Cublas.cublasGemmEx));
    }

    /// <summary>
    /// <paramref name="batchCount"/> independent row-major GEMMs as in <see cref="Gemm"/>; operand i starts
    /// <c>strideX * i</c> ELEMENTS after the first (attention heads, per-adapter LoRA blocks).
    /// </summary>
    public void GemmStridedBatched(bool transA, bool transB, int m, int n, int k,
        float alpha, DevicePtr a, int lda, long strideA, DevicePtr b, int ldb, long strideB,
        float beta, DevicePtr c, int ldc, long strideC, int batchCount,
        CudaDataType abType = CudaDataType.R16BF, CudaDataType cType = CudaDataType.R16BF)
    {
        var g = ColumnMajorGemm.FromRowMajor(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        // The swap exchanges A and B, so their strides swap with them.
        Context.MakeCurrent();
        Check.Cublas(Cublas.cublasGemmStridedBatchedEx(Handle, g.TransA, g.TransB, g.M, g.N, g.K,
            &alpha, g.A.Address, abType, g.Lda, strideB, g.B.Address, abType, g.Ldb, strideA,
            &beta, g.C.Address, cType, g.Ldc, strideC, batchCount, CublasComputeType.Compute32F, CublasGemmAlgo.Default),
            nameof(Cublas.cublasGemmStridedBatchedEx));
    }

    protected override void Release(nint handle)
    {
        // cublasDestroy synchronizes the device, which would invalidate a graph another thread is capturing.
        CaptureGate.WaitUntilNoneOpen(nameof(Cublas.cublasDestroy_v2));
        Check.Cublas(Cublas.cublasDestroy_v2(handle), nameof(Cublas.cublasDestroy_v2));
        _workspace?.Dispose();
        _workspace = null;
    }
}
