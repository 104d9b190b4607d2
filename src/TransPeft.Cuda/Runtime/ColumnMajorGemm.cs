using TransPeft.Cuda.Native;

namespace TransPeft.Cuda;

/// <summary>
/// The arguments of a column-major cuBLAS GEMM, derived from a row-major one by <see cref="FromRowMajor"/>.
/// <para>
/// Why the swap works: a row-major matrix M[r, c] with leading dimension ld is, byte for byte, the column-major
/// matrix Mᵀ[c, r] with the same ld. So the row-major product C = op(A)·op(B) is the column-major product
/// Cᵀ = op(B)ᵀ·op(A)ᵀ: call cuBLAS with the operands swapped (B first), the same transpose flags, and m and n
/// swapped. Nothing is transposed in memory.
/// </para>
/// Example from the design notes, a linear layer <c>Y[BT, OC] = X[BT, C]·W[OC, C]ᵀ</c>: row-major
/// (transA: no, transB: yes, m = BT, n = OC, k = C, A = X, lda = C, B = W, ldb = C, ldc = OC) becomes the
/// column-major call (T, N, m = OC, n = BT, k = C, A = W, lda = C, B = X, ldb = C, C = Y, ldc = OC).
/// </summary>
internal readonly record struct ColumnMajorGemm(
    CublasOperation TransA, CublasOperation TransB, int M, int N, int K,
    DevicePtr A, int Lda, DevicePtr B, int Ldb, DevicePtr C, int Ldc)
{
    /// <summary>
    /// Row-major C[m, n] = op(A)[m, k]·op(B)[k, n]. A is stored [m, k] (lda ≥ k), or [k, m] (lda ≥ m) when
    /// <paramref name="transA"/>; B is stored [k, n] (ldb ≥ n), or [n, k] (ldb ≥ k) when <paramref name="transB"/>;
    /// C is stored [m, n] (ldc ≥ n).
    /// </summary>
    public static ColumnMajorGemm FromRowMajor(bool transA, bool transB, int m, int n, int k,
        DevicePtr a, int lda, DevicePtr b, int ldb, DevicePtr c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"GEMM sizes must be non-negative (m={m}, n={n}, k={k}).");
        RequireLd("lda", lda, transA ? m : k);
        RequireLd("ldb", ldb, transB ? k : n);
        RequireLd("ldc", ldc, n);
        return new ColumnMajorGemm(
            transB ? CublasOperation.T : CublasOperation.N,
            transA ? CublasOperation.T : CublasOperation.N,
            n, m, k, b, ldb, a, lda, c, ldc);
    }

    private static void RequireLd(string name, int ld, int rowLength)
    {
        if (ld < Math.Max(1, rowLength))
            throw new ArgumentException($"{name} = {ld} is smaller than the row it strides over ({rowLength} elements, row-major).");
    }
}
