using Spectre.Console;

namespace TransPeft.Experiments;

/// <summary>The results on the terminal: one Spectre table per task (rows x metrics, mean ± sd, per-seed values of the
/// primary metric), the transfer statistics under it, and the verdict.</summary>
public static class ResultsTable
{
    public static void Print(ExperimentResults r, IAnsiConsole console)
    {
        foreach (var t in r.Tasks)
        {
            var table = new Table().Border(TableBorder.Rounded).Title($"[bold]{Markup.Escape(t.Name)}[/] ({t.Kind})");
            table.AddColumn("row");
            foreach (var m in t.Metrics) table.AddColumn(new TableColumn(Markup.Escape($"{m.Metric.Title} ({(m.Metric.HigherIsBetter ? "↑" : "↓")})")).RightAligned());
            table.AddColumn(new TableColumn(Markup.Escape($"{t.Primary.Metric.Title} per seed")).RightAligned());
            foreach (var row in t.Metrics[0].Rows)
            {
                var cells = new List<string> { Markup.Escape(row.Name) };
                foreach (var m in t.Metrics)
                {
                    var x = m.Rows.First(y => y.Kind == row.Kind && y.Variant == row.Variant);
                    cells.Add(Markup.Escape(MetricFormat.MeanSd(m.Metric, x.Mean, x.StdDev)));
                }
                var p = t.Primary.Rows.First(y => y.Kind == row.Kind && y.Variant == row.Variant);
                cells.Add(Markup.Escape(string.Join("  ", p.Values.Select(v => MetricFormat.Value(t.Primary.Metric, v)))));
                table.AddRow(cells.ToArray());
            }
            console.Write(table);
            var s = t.Primary;
            console.MarkupLine(Markup.Escape($"  retention Direct − FT_old {MetricFormat.DiffCi(s.Metric, s.Retention)}; gap Re-tune − Direct {MetricFormat.DiffCi(s.Metric, s.Gap)}"));
            foreach (var c in s.TransPeft)
                console.MarkupLine(Markup.Escape($"  {c.Variant.Label}: TP − Direct {MetricFormat.DiffCi(s.Metric, c.VsDirect)} ({ExperimentVerdict.Describe(c.Outcome)}), gap recovered {MetricFormat.Share(c.GapRecovered, s.Gap)}, TP retention − plain retention {MetricFormat.DiffCi(s.Metric, c.RetentionVsPlain)}"));
            console.WriteLine();
        }
        var color = r.Verdict.Outcome switch { ExperimentVerdict.Helps => "green", ExperimentVerdict.Hurts => "red", _ => "yellow" };
        console.Write(new Panel(new Markup($"[{color} bold]{Markup.Escape(r.Verdict.Headline)}[/]\n" + Markup.Escape(string.Join("\n", r.Verdict.Details))))
            .Header("verdict").Border(BoxBorder.Rounded));
    }
}
