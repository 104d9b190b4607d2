using TransPeft.Engine.Compute.Cpu;

namespace TransPeft.Engine.Tests.Compute;

/// <summary>The packed GEMM against a naive triple loop, for each of the three layouts a linear layer uses.</summary>
public unsafe class GemmTests
{
    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(7, 13, 5)]
    [InlineData(6, 16, 256)]
    [InlineData(73, 35, 300)]   // crosses MC, KC and sliver edges
    [InlineData(130, 600, 33)]  // crosses NC
    [InlineData(300, 8, 520)]   // narrow output (LoRA rank side): computed transposed, in parallel, across KC
    [InlineData(40, 1100, 7)]   // few row blocks: smaller row blocks so every thread gets tiles
    public void AllLayoutsMatchNaiveProduct(int n, int oc, int c)
    {
        var rng = new Random(n * 1000 + oc);
        double[] x = Rand(rng, n * c), w = Rand(rng, oc * c), dy = Rand(rng, n * oc);
        // forward: y = x·Wᵀ
        var y = new double[n * oc];
        fixed (double* py = y, px = x, pw = w) Gemm.MatmulNT(py, px, pw, n, c, oc, false, 1.0);
        for (int i = 0; i < n; i++) for (int o = 0; o < oc; o++)
        { double s = 0; for (int k = 0; k < c; k++) s += x[i * c + k] * w[o * c + k]; Assert.Equal(s, y[i * oc + o], 1e-9); }
        // input gradient: dx = 0.5 + dy·W (accumulate)
        var dx = Enumerable.Repeat(0.5, n * c).ToArray();
        fixed (double* pdx = dx, pdy = dy, pw = w) Gemm.MatmulNN(pdx, pdy, pw, n, oc, c, true, 1.0);
        for (int i = 0; i < n; i++) for (int k = 0; k < c; k++)
        { double s = 0.5; for (int o = 0; o < oc; o++) s += dy[i * oc + o] * w[o * c + k]; Assert.Equal(s, dx[i * c + k], 1e-9); }
        // weight gradient: dW = 2 · dyᵀ·x
        var dw = new double[oc * c];
        fixed (double* pdw = dw, pdy = dy, px = x) Gemm.MatmulTN(pdw, pdy, px, n, oc, c, false, 2.0);
        for (int o = 0; o < oc; o++) for (int k = 0; k < c; k++)
        { double s = 0; for (int i = 0; i < n; i++) s += dy[i * oc + o] * x[i * c + k]; Assert.Equal(2 * s, dw[o * c + k], 1e-9); }
    }

    [Fact]
    public void Float32PathMatchesDoubleWithinRounding()
    {
        var rng = new Random(9);
        int n = 50, c = 300, oc = 70;
        var xd = Rand(rng, n * c); var wd = Rand(rng, oc * c);
        var xf = Array.ConvertAll(xd, v => (float)v); var wf = Array.ConvertAll(wd, v => (float)v);
        var yf = new float[n * oc];
        fixed (float* py = yf, px = xf, pw = wf) Gemm.PackedMatmulNT(py, px, pw, n, c, oc, false, 1f); // n = 50 would take RowDot
        for (int i = 0; i < n; i++) for (int o = 0; o < oc; o++)
        { double s = 0; for (int k = 0; k < c; k++) s += (double)xf[i * c + k] * wf[o * c + k]; Assert.True(Math.Abs(s - yf[i * oc + o]) < 1e-4, $"{s} vs {yf[i * oc + o]}"); }
        // Weight gradient in float: dW[oc, c] = yᵀ·x (A = yᵀ has contiguous columns: the vector packing path and its edges).
        var dw = new float[oc * c];
        fixed (float* pdw = dw, py = yf, px = xf) Gemm.MatmulTN(pdw, py, px, n, oc, c, false, 1f);
        for (int o = 0; o < oc; o++) for (int k = 0; k < c; k++)
        { double s = 0; for (int i = 0; i < n; i++) s += (double)yf[i * oc + o] * xf[i * c + k]; Assert.True(Math.Abs(s - dw[o * c + k]) < 1e-3, $"{s} vs {dw[o * c + k]}"); }
    }

    private static double[] Rand(Random r, int n) { var a = new double[n]; for (int i = 0; i < n; i++) a[i] = r.NextDouble() * 2 - 1; return a; }
}
