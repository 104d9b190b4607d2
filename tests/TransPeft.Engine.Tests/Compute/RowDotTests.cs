using System.Runtime.Intrinsics;
using TransPeft.Engine.Compute.Cpu;

namespace TransPeft.Engine.Tests.Compute;

/// <summary>
/// The small-M kernel (decode, short prompts, the LM head of a prefill) against a float64 triple loop, at both vector
/// widths (the AVX2 form runs on AVX-512 machines too), at shapes that hit every tile and tail: N not a multiple of the
/// 4-row tile, output rows not a multiple of 4 or of the 64-row parallel block, k shorter than a vector, k one past
/// and one short of the 8- and 16-float widths.
/// </summary>
public unsafe class RowDotTests
{
    public static TheoryData<int, int, int> Shapes => new()
    {
        { 1, 1, 1 }, { 1, 7, 3 }, { 1, 16, 64 }, { 1, 17, 65 }, { 2, 15, 5 }, { 3, 31, 130 }, { 4, 8, 4 },
        { 5, 33, 67 }, { 7, 100, 9 }, { 9, 256, 257 }, { 13, 261, 70 }, { 64, 47, 129 }, { 65, 24, 11 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void BothWidthsMatchTheFloat64Product(int n, int k, int outDim)
    {
        var rng = new Random(n * 7919 + k * 31 + outDim);
        float[] x = Rand(rng, n * k), w = Rand(rng, outDim * k), y0 = Rand(rng, n * outDim);
        foreach (var (name, run) in Widths())
            foreach (bool accumulate in new[] { false, true })
            {
                var y = (float[])y0.Clone();
                fixed (float* py = y, px = x, pw = w) run(py, px, pw, n, k, outDim, accumulate, 0.75f);
                for (int i = 0; i < n; i++)
                    for (int o = 0; o < outDim; o++)
                    {
                        double s = 0;
                        for (int kk = 0; kk < k; kk++) s += (double)x[i * k + kk] * w[o * k + kk];
                        double want = 0.75 * s + (accumulate ? y0[i * outDim + o] : 0);
                        Assert.True(Math.Abs(want - y[i * outDim + o]) <= 1e-5 * (1 + Math.Sqrt(k)),
                            $"{name} n={n} k={k} out={outDim} acc={accumulate} [{i},{o}]: {y[i * outDim + o]} vs {want}");
                    }
            }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void ARowGetsTheSameBitsWhateverTheBatchAndItsPlaceInIt(int threads)
    {
        // Decode relies on this: a sequence's logits do not depend on which sequences share its step.
        const int k = 261, outDim = 133;
        var rng = new Random(5);
        float[] row = Rand(rng, k), w = Rand(rng, outDim * k);
        foreach (var (name, run) in Widths())
        {
            var alone = new float[outDim];
            CpuKernels.WithThreads(threads, () => { fixed (float* py = alone, px = row, pw = w) run(py, px, pw, 1, k, outDim, false, 1f); });
            foreach (int n in new[] { 2, 3, 4, 5, 8, 9, 70 })
                for (int at = 0; at < n; at += Math.Max(1, n / 3))
                {
                    float[] x = Rand(rng, n * k);
                    row.CopyTo(x, at * k);
                    var y = new float[n * outDim];
                    CpuKernels.WithThreads(threads, () => { fixed (float* py = y, px = x, pw = w) run(py, px, pw, n, k, outDim, false, 1f); });
                    Assert.True(alone.AsSpan().SequenceEqual(y.AsSpan(at * outDim, outDim)), $"{name}: row {at} of {n} differs from the row alone");
                }
        }
    }

    [Theory]
    [InlineData(64, 96, true)]    // up to MaxRows rows of a long k
    [InlineData(65, 96, false)]
    [InlineData(15, 16, true)]    // short k (LoRA expand): only a few rows
    [InlineData(16, 16, false)]
    [InlineData(1, 1, true)]
    public void LinearLayersTakeItForFewRowsAndThePackedGemmOtherwise(int n, int k, bool rowDot)
    {
        const int outDim = 40;
        Assert.Equal(rowDot, RowDot.Suits(n, k));
        var rng = new Random(3);
        float[] x = Rand(rng, n * k), w = Rand(rng, outDim * k);
        float[] viaLinear = new float[n * outDim], viaRowDot = new float[n * outDim], viaPacked = new float[n * outDim];
        fixed (float* px = x, pw = w, a = viaLinear, b = viaRowDot, c = viaPacked)
        {
            Gemm.MatmulNT(a, px, pw, n, k, outDim, false, 1f);
            RowDot.MatmulNT(b, px, pw, n, k, outDim, false, 1f);
            Gemm.PackedMatmulNT(c, px, pw, n, k, outDim, false, 1f);
        }
        Assert.Equal(rowDot ? viaRowDot : viaPacked, viaLinear);
    }

    /// <summary>bf16 weights (served adapters at bf16) are widened exactly, so the product is bit for bit the float32
    /// product of the widened weights, at both widths, on every tile and tail.</summary>
    [Theory]
    [MemberData(nameof(Shapes))]
    public void Bf16WeightsGiveTheFloat32ProductOfTheWidenedWeights(int n, int k, int outDim)
    {
        var rng = new Random(n * 131 + k * 17 + outDim);
        float[] x = Rand(rng, n * k), w = Rand(rng, outDim * k), y0 = Rand(rng, n * outDim);
        var bits = w.Select(Engine.IO.BFloat16.FromSingle).ToArray();
        var widened = bits.Select(Engine.IO.BFloat16.ToSingle).ToArray();
        foreach (bool wide in Vector512.IsHardwareAccelerated ? new[] { false, true } : [false])
        {
            float[] viaBf16 = (float[])y0.Clone(), viaF32 = (float[])y0.Clone();
            fixed (float* pb = viaBf16, pf = viaF32, px = x, pw = widened)
            fixed (ushort* pbits = bits)
            {
                if (wide)
                {
                    RowDot.MatmulNT<Lanes512, ushort>(pb, px, pbits, n, k, outDim, true, 0.75f);
                    RowDot.MatmulNT<Lanes512, float>(pf, px, pw, n, k, outDim, true, 0.75f);
                }
                else
                {
                    RowDot.MatmulNT<Lanes256, ushort>(pb, px, pbits, n, k, outDim, true, 0.75f);
                    RowDot.MatmulNT<Lanes256, float>(pf, px, pw, n, k, outDim, true, 0.75f);
                }
            }
            Assert.Equal(viaF32, viaBf16);
        }
    }

    private delegate void Product(float* y, float* x, float* w, int n, int k, int outDim, bool accumulate, float alpha);

    private static (string, Product)[] Widths() => Vector512.IsHardwareAccelerated
        ? [("Vector256", RowDot.MatmulNT<Lanes256>), ("Vector512", RowDot.MatmulNT<Lanes512>)]
        : [("Vector256", RowDot.MatmulNT<Lanes256>)];

    private static float[] Rand(Random r, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(r.NextDouble() * 2 - 1);
        return a;
    }
}
