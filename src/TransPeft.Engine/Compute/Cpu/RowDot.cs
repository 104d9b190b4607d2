using System.Runtime.Intrinsics;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// y[N,out] (+)= alpha · x[N,in]·W[out,in]ᵀ as dot products that read each weight row once for all N rows (four x rows
/// per pass): the decode-time product, bound by streaming the weights, where a packed GEMM (<see cref="Gemm"/>) would
/// first copy them. Each row's sum runs in the same lane order whatever N is and wherever the row sits, so a sequence
/// gets bit-identical results alone or in any batch: batching never changes a greedy token.
/// </summary>
internal static unsafe class RowDot
{
    private const int Block = 64;

    /// <summary>y[N,out] (+)= alpha · x[N,in]·W[out,in]ᵀ (rows of y are <paramref name="outDim"/> apart).</summary>
    public static void MatmulNT(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha)
    {
        if (n <= 0) return;
        CpuParallel.For((outDim + Block - 1) / Block, b =>
        {
            int o1 = Math.Min(outDim, (b + 1) * Block);
            for (int o = b * Block; o < o1; o++)
            {
                float* wo = w + (long)o * inDim;
                int i = 0;
                for (; i + 4 <= n; i += 4) Dot4Rows(wo, x + (long)i * inDim, inDim, y + (long)i * outDim + o, outDim, accumulate, alpha);
                for (; i < n; i++)
                {
                    float* yi = y + (long)i * outDim + o;
                    float d = alpha * Dot1Row(wo, x + (long)i * inDim, inDim);
                    *yi = accumulate ? *yi + d : d;
                }
            }
        }, parallel: (long)outDim * inDim * n > 200_000);
    }

    /// <summary>Four rows against one weight row; per row exactly the accumulation of <see cref="Dot1Row"/>.</summary>
    private static void Dot4Rows(float* wo, float* x0, int k, float* y, int ldy, bool accumulate, float alpha)
    {
        int width = Vector256<float>.Count, kk = 0;
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
        float* x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
        for (; kk + width <= k; kk += width)
        {
            var wv = Vector256.Load(wo + kk);
            s0 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x0 + kk), s0);
            s1 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x1 + kk), s1);
            s2 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x2 + kk), s2);
            s3 = Vector256.FusedMultiplyAdd(wv, Vector256.Load(x3 + kk), s3);
        }
        float t0 = Vector256.Sum(s0), t1 = Vector256.Sum(s1), t2 = Vector256.Sum(s2), t3 = Vector256.Sum(s3);
        for (; kk < k; kk++) { t0 += wo[kk] * x0[kk]; t1 += wo[kk] * x1[kk]; t2 += wo[kk] * x2[kk]; t3 += wo[kk] * x3[kk]; }
        Store(y, alpha * t0, accumulate);
        Store(y + ldy, alpha * t1, accumulate);
        Store(y + 2 * ldy, alpha * t2, accumulate);
        Store(y + 3 * ldy, alpha * t3, accumulate);
    }

    private static float Dot1Row(float* wo, float* x, int k)
    {
        int width = Vector256<float>.Count, kk = 0;
        Vector256<float> s = default;
        for (; kk + width <= k; kk += width) s = Vector256.FusedMultiplyAdd(Vector256.Load(wo + kk), Vector256.Load(x + kk), s);
        float t = Vector256.Sum(s);
        for (; kk < k; kk++) t += wo[kk] * x[kk];
        return t;
    }

    private static void Store(float* y, float d, bool accumulate) => *y = accumulate ? *y + d : d;
}
