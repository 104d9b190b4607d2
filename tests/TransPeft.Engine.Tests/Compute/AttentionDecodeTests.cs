using TransPeft.Engine.Compute.Cpu;

namespace TransPeft.Engine.Tests.Compute;

/// <summary>
/// The single-query attention of a decode step (a dot product per key, an axpy per value, read in place from the cache)
/// against the blocked GEMM path on the whole sequence: the last query's output and logsumexp must agree, in float64
/// to rounding, with GQA groups, a cache larger than the keys used and several rows.
/// </summary>
public class AttentionDecodeTests
{
    [Theory]
    [InlineData(1, 5, 4, 2, 8, 9)]
    [InlineData(2, 17, 8, 8, 32, 20)]
    [InlineData(1, 70, 6, 2, 16, 70)]
    public void ADecodeQueryMatchesTheLastRowOfTheFullSequence(int b, int t, int nh, int nkv, int d, int cap)
    {
        var rng = new Random(t * 31 + d);
        double[] Rand(int n) { var a = new double[n]; for (int i = 0; i < n; i++) a[i] = rng.NextDouble() * 2 - 1; return a; }
        double[] q = Rand(b * t * nh * d), kSeq = Rand(b * t * nkv * d), vSeq = Rand(b * t * nkv * d);
        var full = new double[b * t * nh * d];
        var fullLse = new double[b * nh * t];
        Attention.Forward(full, fullLse, q, kSeq, vSeq, b, t, t, 0, nh, nkv, d);

        // The same keys in a cache of capacity cap (>= t), and only the last query, at position t - 1.
        var kCache = new double[b * cap * nkv * d];
        var vCache = new double[b * cap * nkv * d];
        var qLast = new double[b * nh * d];
        for (int bi = 0; bi < b; bi++)
        {
            Array.Copy(kSeq, bi * t * nkv * d, kCache, bi * cap * nkv * d, t * nkv * d);
            Array.Copy(vSeq, bi * t * nkv * d, vCache, bi * cap * nkv * d, t * nkv * d);
            Array.Copy(q, (bi * t + t - 1) * nh * d, qLast, bi * nh * d, nh * d);
        }
        var one = new double[b * nh * d];
        var oneLse = new double[b * nh];
        Attention.Forward(one, oneLse, qLast, kCache, vCache, b, 1, cap, t - 1, nh, nkv, d);

        for (int bi = 0; bi < b; bi++)
            for (int h = 0; h < nh; h++)
            {
                Assert.Equal(fullLse[(bi * nh + h) * t + t - 1], oneLse[bi * nh + h], 1e-12);
                for (int e = 0; e < d; e++)
                    Assert.Equal(full[((bi * t + t - 1) * nh + h) * d + e], one[(bi * nh + h) * d + e], 1e-12);
            }
    }
}
