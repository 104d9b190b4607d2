namespace TransPeft.Engine.Tests.Support;

/// <summary>Central finite differences in float64 for gradient checks.</summary>
internal static class FiniteDifference
{
    /// <summary>d f / d x[i] by (f(x+h) − f(x−h)) / 2h for each i (x restored afterwards).</summary>
    public static double[] Gradient(Func<double> f, double[] x, double h = 1e-6)
    {
        var g = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double keep = x[i];
            x[i] = keep + h; double up = f();
            x[i] = keep - h; double down = f();
            x[i] = keep;
            g[i] = (up - down) / (2 * h);
        }
        return g;
    }

    public static double[] Random(Random rng, int n, double scale = 1.0)
    {
        var a = new double[n];
        for (int i = 0; i < n; i++) a[i] = (rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>max |a − b| ≤ tol · max(1, max |b|).</summary>
    public static void AssertClose(string what, double[] want, double[] got, double tol = 1e-6)
    {
        Assert.Equal(want.Length, got.Length);
        double scale = Math.Max(1, want.Max(Math.Abs)), worst = 0; int at = -1;
        for (int i = 0; i < want.Length; i++)
        {
            Assert.False(double.IsNaN(got[i]), $"{what}[{i}] is NaN");
            double e = Math.Abs(want[i] - got[i]);
            if (e > worst) { worst = e; at = i; }
        }
        Assert.True(worst <= tol * scale, $"{what}: worst error {worst:E3} at [{at}] (want {(at >= 0 ? want[at] : 0)}, got {(at >= 0 ? got[at] : 0)}), tolerance {tol * scale:E3}");
    }

    public static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }
}
