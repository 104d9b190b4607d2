namespace TransPeft.Engine.Evaluation;

/// <summary>
/// Two conditions measured on the same seeds (e.g. direct transfer vs Trans-PEFT transfer, one adapter pair
/// per seed): the per-seed differences B − A, their mean, standard deviation, and a t-based confidence interval
/// for the mean difference (paired, so seed-to-seed variation common to both conditions cancels).
/// </summary>
public sealed record PairedComparison(
    string Metric, string NameA, string NameB, int N, double MeanA, double MeanB,
    double MeanDifference, double StdDevDifference, double TCritical, ConfidenceInterval Ci,
    IReadOnlyList<double> Differences)
{
    /// <summary>True when the interval excludes zero (the difference is significant at the interval's level).</summary>
    public bool Significant => Ci.Low > 0 || Ci.High < 0;

    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, ResultJsonContext.Default.PairedComparison);

    /// <summary>Pairs a[i] with b[i] (same seed); needs at least two pairs.</summary>
    public static PairedComparison Compare(IReadOnlyList<double> a, IReadOnlyList<double> b, string metric = "value",
        string nameA = "A", string nameB = "B", double level = 0.95)
    {
        if (a.Count != b.Count) throw new ArgumentException($"paired comparison needs one {nameB} value per {nameA} value: got {a.Count} and {b.Count}");
        if (a.Count < 2) throw new ArgumentException($"paired comparison needs at least 2 pairs (seeds), got {a.Count}");
        if (level is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(level), $"confidence level must be in (0, 1), got {level}");
        var diff = new double[a.Count];
        for (int i = 0; i < diff.Length; i++) diff[i] = b[i] - a[i];
        double mean = Statistics.Mean(diff), sd = Statistics.StdDev(diff);
        double t = Statistics.StudentTQuantile(1 - (1 - level) / 2, diff.Length - 1);
        double half = t * sd / Math.Sqrt(diff.Length);
        return new PairedComparison(metric, nameA, nameB, diff.Length, Statistics.Mean(a), Statistics.Mean(b),
            mean, sd, t, new ConfidenceInterval(mean - half, mean + half, level), diff);
    }
}
