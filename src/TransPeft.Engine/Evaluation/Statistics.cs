namespace TransPeft.Engine.Evaluation;

/// <summary>
/// The few statistics the experiments need, in double precision: mean, sample standard deviation, the
/// Wilson score interval for a proportion (accuracy on n examples), and Student-t quantiles for intervals
/// over a handful of seeds.
/// </summary>
public static class Statistics
{
    /// <summary>z with P(|Z| ≤ z) = 0.95 for a standard normal Z.</summary>
    public const double Z95 = 1.959963984540054;

    public static double Mean(IReadOnlyList<double> xs)
    {
        if (xs.Count == 0) throw new ArgumentException("the mean of no values is undefined");
        double s = 0;
        foreach (var x in xs) s += x;
        return s / xs.Count;
    }

    /// <summary>Sample standard deviation (divides by n − 1); 0 for a single value.</summary>
    public static double StdDev(IReadOnlyList<double> xs)
    {
        if (xs.Count < 2) return 0;
        double m = Mean(xs), s = 0;
        foreach (var x in xs) s += (x - m) * (x - m);
        return Math.Sqrt(s / (xs.Count - 1));
    }

    /// <summary>
    /// Wilson score interval for <paramref name="successes"/> out of <paramref name="n"/>: unlike the normal
    /// approximation p ± z·sqrt(p(1−p)/n) it stays inside [0, 1] and is honest at p = 0 or 1 and for small n.
    /// center = (p + z²/2n) / (1 + z²/n), half-width = z / (1 + z²/n) · sqrt(p(1−p)/n + z²/4n²). n = 0 gives [0, 1].
    /// </summary>
    public static ConfidenceInterval Wilson(int successes, int n, double z = Z95, double level = 0.95)
    {
        if (n < 0 || successes < 0 || successes > n) throw new ArgumentException($"need 0 <= successes <= n, got {successes} of {n}");
        if (n == 0) return new(0, 1, level);
        double p = (double)successes / n, z2 = z * z;
        double denom = 1 + z2 / n;
        double center = (p + z2 / (2.0 * n)) / denom;
        double half = z / denom * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
        return new(Math.Max(0, center - half), Math.Min(1, center + half), level);
    }

    /// <summary>The p-quantile of Student's t distribution with <paramref name="df"/> degrees of freedom
    /// (e.g. p = 0.975, df = 9 gives 2.262), by bisection on the CDF.</summary>
    public static double StudentTQuantile(double p, double df)
    {
        if (p is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(p), $"p must be in (0, 1), got {p}");
        if (df <= 0) throw new ArgumentOutOfRangeException(nameof(df), $"degrees of freedom must be positive, got {df}");
        if (p == 0.5) return 0;
        if (p < 0.5) return -StudentTQuantile(1 - p, df);
        double lo = 0, hi = 1;
        while (StudentTCdf(hi, df) < p) { lo = hi; hi *= 2; }
        for (int i = 0; i < 200 && hi - lo > 1e-13 * Math.Max(1, hi); i++)
        {
            double mid = 0.5 * (lo + hi);
            if (StudentTCdf(mid, df) < p) lo = mid; else hi = mid;
        }
        return 0.5 * (lo + hi);
    }

    /// <summary>P(T ≤ t) for Student's t: 1 − ½·I_{df/(df+t²)}(df/2, ½) for t ≥ 0.</summary>
    public static double StudentTCdf(double t, double df)
    {
        double tail = 0.5 * RegularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
        return t >= 0 ? 1 - tail : tail;
    }

    /// <summary>t-based interval mean ± t(1−α/2, n−1)·s/√n for the mean of a small sample.</summary>
    public static ConfidenceInterval MeanInterval(IReadOnlyList<double> xs, double level = 0.95)
    {
        if (xs.Count < 2) throw new ArgumentException($"a confidence interval for a mean needs at least 2 values, got {xs.Count}");
        double m = Mean(xs), se = StdDev(xs) / Math.Sqrt(xs.Count);
        double t = StudentTQuantile(1 - (1 - level) / 2, xs.Count - 1);
        return new(m - t * se, m + t * se, level);
    }

    /// <summary>
    /// Share of the gap between direct transfer and re-tuning that a transfer method recovers:
    /// (mean(transfer) − mean(direct)) / (mean(retune) − mean(direct)). 1 = as good as re-tuning, 0 = no better
    /// than direct transfer; NaN when direct and re-tuning have the same mean. Works for accuracy (higher is
    /// better) and loss (lower is better) alike, since both numerator and denominator change sign together.
    /// </summary>
    public static double GapRecovered(IReadOnlyList<double> direct, IReadOnlyList<double> transfer, IReadOnlyList<double> retune)
    {
        double d = Mean(direct), gap = Mean(retune) - d;
        return gap == 0 ? double.NaN : (Mean(transfer) - d) / gap;
    }

    // Regularized incomplete beta I_x(a, b) by its continued fraction (modified Lentz), using the symmetry
    // I_x(a,b) = 1 − I_{1−x}(b,a) where the fraction converges slowly.
    internal static double RegularizedIncompleteBeta(double x, double a, double b)
    {
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double lnFront = LogGamma(a + b) - LogGamma(a) - LogGamma(b) + a * Math.Log(x) + b * Math.Log(1 - x);
        if (x > (a + 1) / (a + b + 2)) return 1 - Math.Exp(lnFront) * BetaContinuedFraction(1 - x, b, a) / b;
        return Math.Exp(lnFront) * BetaContinuedFraction(x, a, b) / a;
    }

    private static double BetaContinuedFraction(double x, double a, double b)
    {
        const double tiny = 1e-300, eps = 1e-15;
        double c = 1, d = 1 - (a + b) * x / (a + 1);
        if (Math.Abs(d) < tiny) d = tiny;
        d = 1 / d;
        double f = d;
        for (int m = 1; m <= 1000; m++)
        {
            int m2 = 2 * m;
            double num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
            d = 1 + num * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = 1 + num / c; if (Math.Abs(c) < tiny) c = tiny;
            f *= d * c;
            num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
            d = 1 + num * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = 1 + num / c; if (Math.Abs(c) < tiny) c = tiny;
            double delta = d * c;
            f *= delta;
            if (Math.Abs(delta - 1) < eps) break;
        }
        return f;
    }

    // Lanczos approximation (g = 7, 9 terms), accurate to ~1e-15 for x > 0.
    private static readonly double[] Lanczos =
    [
        0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
        12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
    ];

    internal static double LogGamma(double x)
    {
        if (x < 0.5) return Math.Log(Math.PI / Math.Abs(Math.Sin(Math.PI * x))) - LogGamma(1 - x);
        x -= 1;
        double s = Lanczos[0];
        for (int i = 1; i < 9; i++) s += Lanczos[i] / (x + i);
        double t = x + 7.5;
        return 0.5 * Math.Log(2 * Math.PI) + (x + 0.5) * Math.Log(t) - t + Math.Log(s);
    }
}
