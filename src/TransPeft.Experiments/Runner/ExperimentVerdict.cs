using System.Globalization;
using System.Text;

namespace TransPeft.Experiments;

/// <summary>
/// The experiment's conclusion, drawn only from the numbers: for each task, the headline Trans-PEFT variant's
/// transfer is compared with direct transfer on the task's primary metric by the paired 95% interval over seeds
/// (<see cref="TransferOutcome"/>); the overall outcome is "helps" when it helps on some task and hurts on none,
/// "hurts" in the mirror case, "mixed" when both happen, and "no significant effect" otherwise.
/// </summary>
public sealed record ExperimentVerdict(string Outcome, string Headline, string Text, IReadOnlyList<string> Details)
{
    public const string Helps = "helps", Hurts = "hurts", Mixed = "mixed", NoEffect = "no significant effect";

    public static TransferOutcome Decide(MetricSpec metric, Engine.Evaluation.PairedComparison tpMinusDirect)
    {
        if (!tpMinusDirect.Significant) return TransferOutcome.NoSignificantEffect;
        bool better = metric.HigherIsBetter ? tpMinusDirect.MeanDifference > 0 : tpMinusDirect.MeanDifference < 0;
        return better ? TransferOutcome.Helps : TransferOutcome.Hurts;
    }

    public static ExperimentVerdict Build(IReadOnlyList<TaskResult> tasks, IReadOnlyList<AdapterVariant> variants)
    {
        var head = variants[0];
        var per = tasks.Select(t => (Task: t, M: t.Primary, C: t.Primary.TransPeft.First(v => v.Variant == head))).ToList();
        int helps = per.Count(p => p.C.Outcome == TransferOutcome.Helps), hurts = per.Count(p => p.C.Outcome == TransferOutcome.Hurts);
        string outcome = helps > 0 && hurts > 0 ? Mixed : helps > 0 ? Helps : hurts > 0 ? Hurts : NoEffect;
        int seeds = per.Count == 0 ? 0 : per[0].C.VsDirect.N;
        string name = $"Trans-PEFT ({head.Label})";
        string headline = outcome switch
        {
            Helps => $"{name} transferred better than the plain adapter on {helps} of {per.Count} tasks and worse on none.",
            Hurts => $"{name} transferred worse than the plain adapter on {hurts} of {per.Count} tasks and better on none.",
            Mixed => $"{name} transferred better than the plain adapter on {helps} of {per.Count} tasks and worse on {hurts}.",
            _ => $"At this scale {name} did not measurably change how well an adapter survives the update: on none of the {per.Count} tasks did it differ significantly from direct transfer.",
        };

        var details = new List<string>();
        foreach (var (t, m, c) in per)
        {
            var spec = m.Metric;
            var direct = m.Row(RowKind.DirectTransfer);
            var tp = m.Row(RowKind.TransPeftTransfer, head);
            var old = m.Row(RowKind.FineTuneOld);
            var retune = m.Row(RowKind.RetuneNew);
            details.Add($"{t.Name} ({spec.Title}, {spec.Direction}): Fine-tune (old) {MetricFormat.Value(spec, old.Mean)}, Direct {MetricFormat.Value(spec, direct.Mean)}, " +
                $"{name} {MetricFormat.Value(spec, tp.Mean)}, Re-tune {MetricFormat.Value(spec, retune.Mean)}. " +
                $"TP − Direct {MetricFormat.DiffCi(spec, c.VsDirect)} ({Describe(c.Outcome)}); gap recovered {MetricFormat.Share(c.GapRecovered, m.Gap)}; " +
                $"breakage of the plain adapter (Direct − FT_old) {MetricFormat.DiffCi(spec, m.Retention)}{(m.Retention.Significant ? "" : ", not significant")}; " +
                $"gap Re-tune − Direct {MetricFormat.DiffCi(spec, m.Gap)}{(m.Gap.Significant ? "" : ", not significant")}.");
        }
        // The other variants: where did any of them differ from direct transfer?
        foreach (var v in variants.Skip(1))
        {
            var outcomes = per.Select(p => (p.Task.Name, p.M.Metric, C: p.M.TransPeft.First(x => x.Variant == v))).ToList();
            var better = outcomes.Where(o => o.C.Outcome == TransferOutcome.Helps).Select(o => $"{o.Name} {MetricFormat.DiffCi(o.Metric, o.C.VsDirect)}").ToList();
            var worse = outcomes.Where(o => o.C.Outcome == TransferOutcome.Hurts).Select(o => $"{o.Name} {MetricFormat.DiffCi(o.Metric, o.C.VsDirect)}").ToList();
            details.Add($"Trans-PEFT ({v.Label}): better than direct transfer on {(better.Count == 0 ? "no task" : string.Join("; ", better))}, " +
                $"worse on {(worse.Count == 0 ? "no task" : string.Join("; ", worse))}.");
        }

        var text = new StringBuilder(headline);
        text.Append(CultureInfo.InvariantCulture, $" (Paired differences over {seeds} seeds with 95% t-intervals; primary metric per task.)");
        return new ExperimentVerdict(outcome, headline, text.ToString(), details);
    }

    public static string Describe(TransferOutcome o) => o switch
    {
        TransferOutcome.Helps => "significantly better",
        TransferOutcome.Hurts => "significantly worse",
        _ => "not significant",
    };
}
