using System.Globalization;
using TransPeft.Engine.Evaluation;

namespace TransPeft.Experiments;

/// <summary>Numbers as tables and the verdict print them: accuracy in percent, losses in nats with 4 decimals.</summary>
internal static class MetricFormat
{
    private static bool Percent(MetricSpec m) => m.Key == MetricSpec.Accuracy;

    public static string Value(MetricSpec m, double x) => double.IsNaN(x) ? "n/a"
        : Percent(m) ? (100 * x).ToString("0.0", CultureInfo.InvariantCulture) + "%" : x.ToString("0.0000", CultureInfo.InvariantCulture);

    /// <summary>Mean ± sd.</summary>
    public static string MeanSd(MetricSpec m, double mean, double sd) => double.IsNaN(mean) ? "n/a"
        : Percent(m) ? $"{(100 * mean).ToString("0.0", CultureInfo.InvariantCulture)} ± {(100 * sd).ToString("0.0", CultureInfo.InvariantCulture)}%"
        : $"{mean.ToString("0.0000", CultureInfo.InvariantCulture)} ± {sd.ToString("0.0000", CultureInfo.InvariantCulture)}";

    /// <summary>A signed difference: "+1.3 pts" for accuracy, "-0.0123" for a loss.</summary>
    public static string Diff(MetricSpec m, double d) => double.IsNaN(d) ? "n/a"
        : Percent(m) ? (100 * d).ToString("+0.0;-0.0;0.0", CultureInfo.InvariantCulture) + " pts" : d.ToString("+0.0000;-0.0000;0.0000", CultureInfo.InvariantCulture);

    /// <summary>"+1.3 pts [-0.2, +2.8]".</summary>
    public static string DiffCi(MetricSpec m, PairedComparison c) => $"{Diff(m, c.MeanDifference)} [{Diff(m, c.Ci.Low).Replace(" pts", "")}, {Diff(m, c.Ci.High)}]";

    /// <summary>The share of the Direct -> Re-tune gap recovered, flagged when the gap itself is not significant
    /// (then the share divides by noise and means little).</summary>
    public static string Share(double x, PairedComparison gap) => double.IsNaN(x) ? "n/a (no gap)"
        : (100 * x).ToString("0", CultureInfo.InvariantCulture) + "%" + (gap.Significant ? "" : " (of a gap that is not significant)");
}
