using TransPeft.Cuda;
using TransPeft.Cuda.Native;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>
/// The row-major to column-major GEMM mapping, checked without a GPU: a column-major reference GEMM (what
/// cuBLAS computes) run on the mapped arguments must give the row-major product.
/// </summary>
public sealed class RowMajorGemmTests
{
    [Fact]
    public void TheLinearLayerMapsToTheCallInTheDesignNotes()
    {
        // Y[BT, OC] = X[BT, C] · W[OC, C]ᵀ  →  (T, N, m = OC, n = BT, k = C, A = W, lda = C, B = X, ldb = C, C = Y, ldc = OC)
        const int BT = 6, C = 4, OC = 5;
        DevicePtr x = new(0x1000), w = new(0x2000), y = new(0x3000);
        var g = ColumnMajorGemm.FromRowMajor(transA: false, transB: true, BT, OC, C, x, C, w, C, y, OC);
        Assert.Equal(new ColumnMajorGemm(CublasOperation.T, CublasOperation.N, OC, BT, C, w, C, x, C, y, OC), g);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void ColumnMajorGemmOnTheMappedArgumentsComputesTheRowMajorProduct(bool transA, bool transB)
    {
        const int m = 3, n = 5, k = 4, pad = 2;
        var rng = new Random(1234 + (transA ? 2 : 0) + (transB ? 1 : 0));
        // Row-major storage with padded leading dimensions, so ld mix-ups cannot hide.
        var (aRows, aCols) = transA ? (k, m) : (m, k);
        var (bRows, bCols) = transB ? (n, k) : (k, n);
        int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
        var memory = new float[3][];
        memory[0] = Random(rng, aRows * lda);
        memory[1] = Random(rng, bRows * ldb);
        memory[2] = Random(rng, m * ldc);
        var c0 = (float[])memory[2].Clone();
        const float alpha = 0.75f, beta = 0.5f;

        var g = ColumnMajorGemm.FromRowMajor(transA, transB, m, n, k, new DevicePtr(0), lda, new DevicePtr(1), ldb, new DevicePtr(2), ldc);
        ReferenceColumnMajorGemm(g, alpha, beta, memory);

        for (var i = 0; i < m; i++)
            for (var j = 0; j < n; j++)
            {
                double sum = 0;
                for (var p = 0; p < k; p++)
                {
                    var aip = transA ? memory[0][p * lda + i] : memory[0][i * lda + p];
                    var bpj = transB ? memory[1][j * ldb + p] : memory[1][p * ldb + j];
                    sum += aip * bpj;
                }
                var expected = alpha * sum + beta * c0[i * ldc + j];
                Assert.Equal(expected, memory[2][i * ldc + j], 4);
            }
        // The padding between rows of C is untouched.
        for (var i = 0; i < m; i++)
            for (var j = n; j < ldc; j++)
                Assert.Equal(c0[i * ldc + j], memory[2][i * ldc + j]);
    }

    [Fact]
    public void LeadingDimensionsShorterThanARowAreRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => ColumnMajorGemm.FromRowMajor(false, true, 8, 4, 16, default, 15, default, 16, default, 4));
        Assert.Contains("lda = 15", e.Message);
        Assert.Throws<ArgumentException>(() => ColumnMajorGemm.FromRowMajor(false, false, 8, 4, 16, default, 16, default, 3, default, 4));
        Assert.Throws<ArgumentException>(() => ColumnMajorGemm.FromRowMajor(false, false, 8, 4, 16, default, 16, default, 4, default, 3));
    }

    /// <summary>cuBLAS semantics: C = alpha·op(A)·op(B) + beta·C, column-major, element (r, c) of X at X[r + c·ldx].
    /// "Device pointers" 0, 1, 2 index <paramref name="memory"/>.</summary>
    private static void ReferenceColumnMajorGemm(ColumnMajorGemm g, float alpha, float beta, float[][] memory)
    {
        var a = memory[g.A.Address];
        var b = memory[g.B.Address];
        var c = memory[g.C.Address];
        for (var col = 0; col < g.N; col++)
            for (var row = 0; row < g.M; row++)
            {
                double sum = 0;
                for (var p = 0; p < g.K; p++)
                {
                    var opA = g.TransA == CublasOperation.N ? a[row + p * g.Lda] : a[p + row * g.Lda];
                    var opB = g.TransB == CublasOperation.N ? b[p + col * g.Ldb] : b[col + p * g.Ldb];
                    sum += opA * opB;
                }
                c[row + col * g.Ldc] = (float)(alpha * sum + beta * c[row + col * g.Ldc]);
            }
    }

    private static float[] Random(Random rng, int n)
    {
        var a = new float[n];
        for (var i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }
}
