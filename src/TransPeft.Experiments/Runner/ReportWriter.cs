using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace TransPeft.Experiments;

/// <summary>report.md: the verdict with its numbers, the bases and the update, every task's table, the transfer
/// statistics, the plots and the stage times. Every number comes from <see cref="ExperimentResults"/>.</summary>
internal static class ReportWriter
{
    public static string Write(ExperimentResults r, ExperimentLayout layout, IReadOnlyList<string> plots)
    {
        var p = r.Preset;
        var sb = new StringBuilder();
        sb.AppendLine($"# Trans-PEFT transfer experiment: preset `{p.Name}`");
        sb.AppendLine();
        sb.AppendLine(p.Description + ".");
        sb.AppendLine();
        sb.AppendLine("## Verdict");
        sb.AppendLine();
        sb.AppendLine($"**{r.Verdict.Headline}**");
        sb.AppendLine();
        sb.AppendLine($"Outcome: `{r.Verdict.Outcome}`. {r.Verdict.Text[r.Verdict.Headline.Length..].Trim()}");
        sb.AppendLine();
        foreach (var d in r.Verdict.Details) sb.AppendLine($"- {d}");
        sb.AppendLine();

        sb.AppendLine("## Bases and the update");
        sb.AppendLine();
        var cfg = r.V1["config"] as JsonObject;
        sb.AppendLine($"- Model: {Num(r.V1["parameters"], "N0")} parameters (hidden {cfg?["hidden_size"]}, {cfg?["num_hidden_layers"]} layers, " +
            $"FFN {cfg?["intermediate_size"]}, vocabulary {cfg?["vocab_size"]}).");
        sb.AppendLine($"- v1: {p.V1.Steps} steps x {p.V1.BatchSize} x {p.V1.SeqLen} tokens on corpus A, lr {p.V1.LearningRate.ToString("G3", CultureInfo.InvariantCulture)} cosine; " +
            $"train loss {Num(r.V1["first_loss"])} -> {Num(r.V1["final_loss"])}, held-out A {Num(r.V1["first_val_loss"])} -> {Num(r.V1["final_val_loss"])} " +
            $"({Num(r.V1["tokens"], "N0")} tokens, {Num(r.V1["tokens_per_second"], "N0")} tokens/s).");
        sb.AppendLine($"- v2 (the update): v1 continued {p.V2.Steps} steps x {p.V2.BatchSize} x {p.V2.SeqLen} tokens on corpus B with {(100 * p.V2.ReplayFraction).ToString("0", CultureInfo.InvariantCulture)}% of the text replayed from corpus A, " +
            $"lr {p.V2.LearningRate.ToString("G3", CultureInfo.InvariantCulture)} cosine; held-out B {Num(r.V2["first_val_loss"])} -> {Num(r.V2["final_val_loss"])}.");
        sb.AppendLine();
        var h = r.Update["heldout_loss"];
        sb.AppendLine("| held-out loss (nats/token) | v1 | v2 |");
        sb.AppendLine("|---|---|---|");
        sb.AppendLine($"| corpus A (v1's pre-training text) | {Num(h?["corpus_a"]?["v1"], "0.0000")} | {Num(h?["corpus_a"]?["v2"], "0.0000")} |");
        sb.AppendLine($"| corpus B (the update's text) | {Num(h?["corpus_b"]?["v1"], "0.0000")} | {Num(h?["corpus_b"]?["v2"], "0.0000")} |");
        sb.AppendLine();
        sb.AppendLine($"Relative weight change ||W_v2 − W_v1|| / ||W_v1||: attention (q/k/v/o) {Num(r.Update["attention_change"], "0.0000")}, " +
            $"FFN (gate/up/down) {Num(r.Update["ffn_change"], "0.0000")} (FFN/attention {Num(r.Update["ffn_over_attention"], "0.00")}x), " +
            $"embeddings {Num(r.Update["embedding_change"], "0.0000")}, LM head {Num(r.Update["lm_head_change"], "0.0000")}.");
        sb.AppendLine();
        sb.AppendLine("| layer | attention | FFN | attention output cosine | FFN output cosine | top-k FFN neuron overlap |");
        sb.AppendLine("|---|---|---|---|---|---|");
        foreach (var l in (r.Update["layers"] as JsonArray ?? []).OfType<JsonObject>())
            sb.AppendLine($"| {l["layer"]} | {Num(l["attention_change"], "0.0000")} | {Num(l["ffn_change"], "0.0000")} | {Num(l["attention_output_cosine"], "0.0000")} | {Num(l["ffn_output_cosine"], "0.0000")} | {Num(l["top_neuron_overlap"], "0.00")} |");
        sb.AppendLine();

        sb.AppendLine("## Results");
        sb.AppendLine();
        sb.AppendLine($"Adapters: LoRA r={p.Adapter.Rank}, alpha {p.Adapter.Alpha.ToString(CultureInfo.InvariantCulture)}, dropout {p.Adapter.Dropout.ToString(CultureInfo.InvariantCulture)} on {string.Join(", ", p.Adapter.Targets)}, " +
            $"{p.Adapter.Steps} steps x {p.Adapter.BatchSize} examples, lr {p.Adapter.LearningRate.ToString("G3", CultureInfo.InvariantCulture)} cosine; seeds {string.Join(", ", p.Seeds)} " +
            "(one adapter of every kind per seed; rows paired by seed). Values: mean ± sd over seeds.");
        sb.AppendLine();
        sb.Append(Tables(r));
        sb.AppendLine("Statistics per task (primary metric first; differences are paired per seed, 95% t-intervals):");
        sb.AppendLine();
        foreach (var t in r.Tasks)
        {
            foreach (var m in t.Metrics)
            {
                var s = m.Metric;
                sb.AppendLine($"- **{t.Name}, {s.Title}** ({s.Direction}): retention Direct − FT_old {MetricFormat.DiffCi(s, m.Retention)}; gap Re-tune − Direct {MetricFormat.DiffCi(s, m.Gap)}");
                foreach (var c in m.TransPeft)
                    sb.AppendLine($"  - {c.Variant.Label}: gap recovered {MetricFormat.Share(c.GapRecovered, m.Gap)}; TP − Direct {MetricFormat.DiffCi(s, c.VsDirect)} ({ExperimentVerdict.Describe(c.Outcome)}); " +
                        $"TP retention (on v2 − on v1) {MetricFormat.DiffCi(s, c.Retention)}; TP retention − plain retention {MetricFormat.DiffCi(s, c.RetentionVsPlain)}; TP − Re-tune {MetricFormat.DiffCi(s, c.VsRetune)}");
            }
        }
        sb.AppendLine();

        sb.AppendLine("## Plots");
        sb.AppendLine();
        foreach (var plot in plots)
        {
            var rel = Path.GetRelativePath(layout.Root, plot).Replace(Path.DirectorySeparatorChar, '/');
            sb.AppendLine($"![{Path.GetFileNameWithoutExtension(plot)}]({rel})");
        }
        sb.AppendLine();

        sb.AppendLine("## Time");
        sb.AppendLine();
        sb.AppendLine($"| stage | wall seconds | CPU seconds (all threads) |");
        sb.AppendLine("|---|---|---|");
        var cpu = r.StageCpuTimes();
        foreach (var (k, s) in r.StageTimes()) sb.AppendLine($"| {k} | {s.ToString("0.0", CultureInfo.InvariantCulture)} | {cpu.GetValueOrDefault(k).ToString("0.0", CultureInfo.InvariantCulture)} |");
        sb.AppendLine($"| **all stages** | **{r.TotalStageSeconds.ToString("0.0", CultureInfo.InvariantCulture)}** | **{cpu.Values.Sum().ToString("0.0", CultureInfo.InvariantCulture)}** |");
        sb.AppendLine();
        sb.AppendLine("Times are those of the session that finished each stage (a resumed training stage counts its last session only). " +
            "CPU seconds over wall seconds shows how much of the machine the run had: on a machine shared with other work the wall time grows, the CPU time hardly.");
        sb.AppendLine();
        sb.AppendLine("All numbers: `results.json` (every row, every seed). Design and discussion: docs/EXPERIMENT.md.");
        return sb.ToString();
    }

    /// <summary>One markdown table per task: rows x metrics, mean ± sd.</summary>
    public static string Tables(ExperimentResults r)
    {
        var sb = new StringBuilder();
        foreach (var t in r.Tasks)
        {
            sb.AppendLine($"**{t.Name}** ({t.Kind}; {string.Join(", ", t.Metrics.Select(m => $"{m.Metric.Title}: {m.Metric.Direction}"))})");
            sb.AppendLine();
            sb.AppendLine("| row | " + string.Join(" | ", t.Metrics.Select(m => m.Metric.Title)) + " |");
            sb.AppendLine("|---|" + string.Concat(t.Metrics.Select(_ => "---|")));
            foreach (var row in t.Metrics[0].Rows)
            {
                var cells = t.Metrics.Select(m =>
                {
                    var x = m.Rows.First(y => y.Kind == row.Kind && y.Variant == row.Variant);
                    return MetricFormat.MeanSd(m.Metric, x.Mean, x.StdDev);
                });
                sb.AppendLine($"| {row.Name} | {string.Join(" | ", cells)} |");
            }
            sb.AppendLine();
        }
        return sb.ToString();
    }

    private static string Num(JsonNode? n, string format = "0.000") =>
        n is JsonValue v && v.TryGetValue(out double d) ? d.ToString(format, CultureInfo.InvariantCulture) : "n/a";
}
