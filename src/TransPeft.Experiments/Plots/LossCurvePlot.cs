using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments.Plots;

/// <summary>
/// Draws a run's loss curve from OUT/metrics.jsonl: the training loss of every step (thin line), its
/// exponential moving average (so the trend shows through batch noise), and the validation loss at each
/// evaluation (markers). Written atomically as a PNG.
/// </summary>
public static class LossCurvePlot
{
    public sealed record Series(double[] Steps, double[] Loss, double[] ValSteps, double[] ValLoss);

    /// <summary>Reads step and val lines; malformed lines are an error naming the file and line.</summary>
    public static Series Read(string metricsPath)
    {
        var steps = new List<double>(); var loss = new List<double>();
        var vsteps = new List<double>(); var vloss = new List<double>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(metricsPath))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            JsonObject o;
            try { o = JsonNode.Parse(line) as JsonObject ?? throw new FormatException("not an object"); }
            catch (Exception e) when (e is JsonException or FormatException)
            {
                throw new FormatException($"{metricsPath}:line {lineNo}: expected a JSON object of metrics ({e.Message})");
            }
            if (o["step"] is not JsonValue sv || !sv.TryGetValue(out double step))
                throw new FormatException($"{metricsPath}:line {lineNo}: field 'step': expected a number");
            if (o["loss"] is JsonValue lv && lv.TryGetValue(out double l)) { steps.Add(step); loss.Add(l); }
            if (o["val_loss"] is JsonValue vv && vv.TryGetValue(out double v)) { vsteps.Add(step); vloss.Add(v); }
        }
        return new Series([.. steps], [.. loss], [.. vsteps], [.. vloss]);
    }

    /// <summary>Exponential moving average with bias correction (as TensorBoard's smoothing).</summary>
    internal static double[] Smooth(double[] y, double weight)
    {
        var r = new double[y.Length];
        double last = 0;
        for (int i = 0; i < y.Length; i++)
        {
            last = last * weight + (1 - weight) * y[i];
            r[i] = last / (1 - Math.Pow(weight, i + 1));
        }
        return r;
    }

    /// <summary>Renders <paramref name="metricsPath"/> into <paramref name="pngPath"/>; returns the series drawn.</summary>
    public static Series Save(string metricsPath, string pngPath, int width = 1000, int height = 560, string? title = null)
    {
        var s = Read(metricsPath);
        if (s.Loss.Length == 0 && s.ValLoss.Length == 0)
            throw new InvalidOperationException($"{metricsPath}: no loss recorded yet, nothing to plot");
        var plot = new ScottPlot.Plot();
        if (s.Loss.Length > 0)
        {
            var raw = plot.Add.ScatterLine(s.Steps, s.Loss);
            raw.LegendText = "train loss";
            raw.LineWidth = 1;
            raw.Color = ScottPlot.Colors.SteelBlue.WithAlpha(0.35);
            if (s.Loss.Length >= 10)
            {
                var ema = plot.Add.ScatterLine(s.Steps, Smooth(s.Loss, 0.9));
                ema.LegendText = "train loss (EMA 0.9)";
                ema.LineWidth = 2;
                ema.Color = ScottPlot.Colors.SteelBlue;
            }
        }
        if (s.ValLoss.Length > 0)
        {
            var val = plot.Add.Scatter(s.ValSteps, s.ValLoss);
            val.LegendText = "validation loss";
            val.LineWidth = 2;
            val.MarkerSize = 7;
            val.Color = ScottPlot.Colors.OrangeRed;
        }
        plot.XLabel("step");
        plot.YLabel("loss (mean CE per target token)");
        plot.Title(title ?? Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(metricsPath))) ?? "loss");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        var bytes = plot.GetImage(width, height).GetImageBytes(ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(pngPath, bytes);
        return s;
    }
}
