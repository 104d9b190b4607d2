using ScottPlot;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments;

/// <summary>
/// A task's rows as bars (mean over seeds, error bar = sd): the primary metric, and for a task with groups the
/// same metric per group beside it (e.g. completion loss over all, rewritten and stable words).
/// </summary>
internal static class MetricBarsPlot
{
    private static readonly Color[] Palette = [Colors.SteelBlue, Colors.OrangeRed, Colors.SeaGreen, Colors.DarkGoldenRod, Colors.MediumPurple];

    public static void Save(TaskResult task, string path, int width = 1100, int height = 560)
    {
        var primary = task.Primary.Metric;
        var shown = task.Metrics.Where(m => m.Metric.IsPrimary || m.Metric.Group is not null).ToList();
        var rows = shown[0].Rows;
        var plot = new Plot();
        double groupWidth = 0.8, barWidth = groupWidth / shown.Count;
        double scale = primary.Key == MetricSpec.Accuracy ? 100 : 1;
        double min = double.MaxValue, max = double.MinValue;
        for (int k = 0; k < shown.Count; k++)
        {
            var bars = new List<Bar>();
            for (int i = 0; i < rows.Count; i++)
            {
                var row = shown[k].Rows.First(x => x.Kind == rows[i].Kind && x.Variant == rows[i].Variant);
                double mean = row.Mean * scale, sd = row.StdDev * scale;
                bars.Add(new Bar
                {
                    Position = i - groupWidth / 2 + barWidth * (k + 0.5),
                    Value = mean,
                    Error = sd,
                    Size = barWidth * 0.9,
                    FillColor = Palette[k % Palette.Length],
                });
                min = Math.Min(min, mean - sd); max = Math.Max(max, mean + sd);
            }
            plot.Add.Bars(bars);
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = shown[k].Metric.Title, FillColor = Palette[k % Palette.Length] });
        }
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, rows.Count).Select(i => (double)i).ToArray(), rows.Select(r => Wrap(r.Name)).ToArray());
        // Bars of nearby values are unreadable from 0: the axis starts a little below the lowest bar.
        double pad = Math.Max((max - min) * 0.25, Math.Abs(max) * 0.01 + 1e-9);
        plot.Axes.SetLimits(-0.6, rows.Count - 0.4, Math.Max(0, min - pad), max + pad);
        plot.YLabel(primary.Key == MetricSpec.Accuracy ? "accuracy (%)" : $"{primary.Title} ({primary.Direction})");
        plot.Title($"{task.Name}: mean over {rows[0].Values.Count} seeds, error bars = sd");
        plot.ShowLegend(Alignment.UpperRight);
        AtomicFile.WriteAllBytes(path, plot.GetImageBytes(width, height, ImageFormat.Png));
    }

    /// <summary>Row names on two lines: "Trans-PEFT transfer\n(p_drop 0.1)".</summary>
    private static string Wrap(string name)
    {
        int i = name.IndexOf(" (", StringComparison.Ordinal);
        return i < 0 ? name : name[..i] + "\n" + name[(i + 1)..];
    }
}
