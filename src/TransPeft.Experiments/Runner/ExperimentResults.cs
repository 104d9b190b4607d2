using System.Globalization;
using System.Text.Json.Nodes;
using TransPeft.Engine.Evaluation;

namespace TransPeft.Experiments;

/// <summary>
/// Everything the experiment measured, aggregated from the stage markers: per task and metric the value of every
/// row for every seed, their mean and sd, retention (Direct − FT_old), the Direct → Re-tune gap, and for each
/// Trans-PEFT variant the share of the gap it recovers and paired differences with 95% intervals; the bases and
/// the update; the time of every stage; and the verdict. <see cref="ToJson"/> is results.json.
/// </summary>
public sealed record ExperimentResults(
    ExperimentPreset Preset, IReadOnlyList<TaskResult> Tasks, ExperimentVerdict Verdict,
    JsonObject Data, JsonObject V1, JsonObject V2, JsonObject Update,
    IReadOnlyDictionary<string, double> StageSeconds, IReadOnlyDictionary<string, double> StageCpuSeconds, double SessionSeconds)
{
    public const string Format = "tpeft.experiment-results";

    internal static ExperimentResults Build(ExperimentPreset preset, IReadOnlyList<TaskSpec> tasks, IReadOnlyDictionary<string, StageRecord> stages, TimeSpan session)
    {
        JsonObject Stage(string id) => stages.TryGetValue(id, out var r) ? r.Result
            : throw new InvalidOperationException($"stage '{id}' has not finished; rerun the experiment to complete it");

        var taskResults = new List<TaskResult>();
        foreach (var task in tasks)
        {
            // metrics[adapter id][on-base] for each seed, read from the evaluation markers.
            double? Value(AdapterKey key, string onBase, string metric) =>
                stages.TryGetValue(key.EvalStage(onBase), out var r) && r.Result["metrics"]?[metric] is JsonValue v && v.TryGetValue(out double d) ? d : null;

            var metrics = new List<MetricResult>();
            foreach (var spec in task.Metrics)
            {
                var rowDefs = new List<(RowKind Kind, AdapterVariant Variant)>
                {
                    (RowKind.FineTuneOld, AdapterVariant.Plain), (RowKind.DirectTransfer, AdapterVariant.Plain),
                };
                rowDefs.AddRange(preset.Variants.Select(v => (RowKind.TransPeftTransfer, v)));
                rowDefs.Add((RowKind.RetuneNew, AdapterVariant.Plain));
                rowDefs.AddRange(preset.Variants.Select(v => (RowKind.TransPeftOnOld, v)));

                double? Cell(RowKind kind, AdapterVariant v, int seed)
                {
                    var probe = new RowResult(kind, v, [], []);
                    var (adapterBase, evalBase) = probe.Bases;
                    return Value(new AdapterKey(task.Name, v, adapterBase, seed), evalBase, spec.Key);
                }
                // Rows are paired by seed: keep the seeds for which every row has a value.
                var seeds = preset.Seeds.Where(s => rowDefs.All(r => Cell(r.Kind, r.Variant, s) is not null)).ToList();
                if (seeds.Count < 2)
                    throw new InvalidOperationException($"task {task.Name}, {spec.Key}: {seeds.Count} complete seed(s); paired statistics need at least 2 (rerun to finish the missing stages)");
                var rows = rowDefs.Select(r => new RowResult(r.Kind, r.Variant, seeds, seeds.Select(s => Cell(r.Kind, r.Variant, s)!.Value).ToList())).ToList();
                RowResult Row(RowKind k, AdapterVariant v) => rows.First(r => r.Kind == k && r.Variant == v);

                var old = Row(RowKind.FineTuneOld, AdapterVariant.Plain).Values;
                var direct = Row(RowKind.DirectTransfer, AdapterVariant.Plain).Values;
                var retune = Row(RowKind.RetuneNew, AdapterVariant.Plain).Values;
                var retention = PairedComparison.Compare(old, direct, spec.Key, "Fine-tune (old)", "Direct transfer");
                var gap = PairedComparison.Compare(direct, retune, spec.Key, "Direct transfer", "Re-tune (new)");
                var comparisons = new List<VariantComparison>();
                foreach (var v in preset.Variants)
                {
                    var tp = Row(RowKind.TransPeftTransfer, v).Values;
                    var tpOld = Row(RowKind.TransPeftOnOld, v).Values;
                    var vsDirect = PairedComparison.Compare(direct, tp, spec.Key, "Direct transfer", $"Trans-PEFT transfer ({v.Label})");
                    var tpRetention = PairedComparison.Compare(tpOld, tp, spec.Key, $"Trans-PEFT on old ({v.Label})", $"Trans-PEFT transfer ({v.Label})");
                    var retentionVsPlain = PairedComparison.Compare(retention.Differences, tpRetention.Differences, spec.Key, "plain retention", "Trans-PEFT retention");
                    var vsRetune = PairedComparison.Compare(retune, tp, spec.Key, "Re-tune (new)", $"Trans-PEFT transfer ({v.Label})");
                    comparisons.Add(new VariantComparison(v, Statistics.GapRecovered(direct, tp, retune), vsDirect, tpRetention, retentionVsPlain, vsRetune,
                        ExperimentVerdict.Decide(spec, vsDirect)));
                }
                metrics.Add(new MetricResult(spec, rows, retention, gap, comparisons));
            }
            taskResults.Add(new TaskResult(task.Name, task.IsClassification ? "classification" : "generation", metrics));
        }

        var seconds = stages.ToDictionary(kv => kv.Key, kv => kv.Value.Seconds, StringComparer.Ordinal);
        var cpu = stages.ToDictionary(kv => kv.Key, kv => double.IsNaN(kv.Value.CpuSeconds) ? 0 : kv.Value.CpuSeconds, StringComparer.Ordinal);
        return new ExperimentResults(preset, taskResults, ExperimentVerdict.Build(taskResults, preset.Variants),
            Stage("data"), Stage("base/v1"), Stage("base/v2"), Stage("base/analysis"), seconds, cpu, session.TotalSeconds);
    }

    /// <summary>Stage wall time summed by kind: data, base/v1, base/v2, base/analysis, adapter training, adapter evaluation.</summary>
    public IReadOnlyDictionary<string, double> StageTimes() => ByKind(StageSeconds);

    /// <summary>Process CPU time (all threads) summed by kind, as <see cref="StageTimes"/>.</summary>
    public IReadOnlyDictionary<string, double> StageCpuTimes() => ByKind(StageCpuSeconds);

    private static IReadOnlyDictionary<string, double> ByKind(IReadOnlyDictionary<string, double> perStage)
    {
        var d = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (id, s) in perStage)
        {
            string k = id.StartsWith("train/", StringComparison.Ordinal) ? "adapter training"
                : id.StartsWith("eval/", StringComparison.Ordinal) ? "adapter evaluation" : id;
            d[k] = d.GetValueOrDefault(k) + s;
        }
        return d;
    }

    public double TotalStageSeconds => StageSeconds.Values.Sum();

    public JsonObject ToJson()
    {
        var tasks = new JsonArray();
        foreach (var t in Tasks)
        {
            var metrics = new JsonArray();
            foreach (var m in t.Metrics)
            {
                metrics.Add((JsonNode)new JsonObject
                {
                    ["key"] = m.Metric.Key,
                    ["title"] = m.Metric.Title,
                    ["group"] = m.Metric.Group,
                    ["primary"] = m.Metric.IsPrimary,
                    ["higher_is_better"] = m.Metric.HigherIsBetter,
                    ["rows"] = new JsonArray(m.Rows.Select(r => (JsonNode?)new JsonObject
                    {
                        ["name"] = r.Name,
                        ["kind"] = r.Kind.ToString(),
                        ["variant"] = r.Variant.Id,
                        ["p_mask"] = r.Variant.PMask,
                        ["p_drop"] = r.Variant.PDrop,
                        ["adapter_base"] = r.Bases.AdapterBase,
                        ["eval_base"] = r.Bases.EvalBase,
                        ["seeds"] = Ints(r.Seeds),
                        ["values"] = Doubles(r.Values),
                        ["mean"] = r.Mean,
                        ["sd"] = r.StdDev,
                    }).ToArray()),
                    ["retention"] = Paired(m.Retention, "Direct transfer − Fine-tune (old), per seed"),
                    ["gap"] = Paired(m.Gap, "Re-tune (new) − Direct transfer, per seed"),
                    ["trans_peft"] = new JsonArray(m.TransPeft.Select(c => (JsonNode?)new JsonObject
                    {
                        ["variant"] = c.Variant.Id,
                        ["p_mask"] = c.Variant.PMask,
                        ["p_drop"] = c.Variant.PDrop,
                        ["gap_recovered"] = Finite(c.GapRecovered),
                        ["outcome"] = c.Outcome.ToString(),
                        ["vs_direct"] = Paired(c.VsDirect, "Trans-PEFT transfer − Direct transfer"),
                        ["retention"] = Paired(c.Retention, "Trans-PEFT transfer − Trans-PEFT on old"),
                        ["retention_vs_plain"] = Paired(c.RetentionVsPlain, "Trans-PEFT retention − plain retention"),
                        ["vs_retune"] = Paired(c.VsRetune, "Trans-PEFT transfer − Re-tune (new)"),
                    }).ToArray()),
                });
            }
            tasks.Add((JsonNode)new JsonObject { ["name"] = t.Name, ["kind"] = t.Kind, ["metrics"] = metrics });
        }
        var times = new JsonObject();
        foreach (var (k, s) in StageTimes()) times[k] = Math.Round(s, 1);
        var cpuTimes = new JsonObject();
        foreach (var (k, s) in StageCpuTimes()) cpuTimes[k] = Math.Round(s, 1);
        return new JsonObject
        {
            ["format"] = Format,
            ["version"] = 1,
            ["preset"] = Preset.ToJson(),
            ["verdict"] = new JsonObject
            {
                ["outcome"] = Verdict.Outcome,
                ["headline_variant"] = Preset.Variants[0].Id,
                ["headline"] = Verdict.Headline,
                ["text"] = Verdict.Text,
                ["details"] = new JsonArray(Verdict.Details.Select(d => (JsonNode?)JsonValue.Create(d)).ToArray()),
            },
            ["tasks"] = tasks,
            ["bases"] = new JsonObject { ["v1"] = V1.DeepClone(), ["v2"] = V2.DeepClone() },
            ["update"] = Update.DeepClone(),
            ["data"] = Data.DeepClone(),
            ["stage_seconds"] = times,
            ["stage_seconds_total"] = Math.Round(TotalStageSeconds, 1),
            ["stage_cpu_seconds"] = cpuTimes,
            ["stage_cpu_seconds_total"] = Math.Round(StageCpuSeconds.Values.Sum(), 1),
        };
    }

    private static JsonNode? Finite(double x) => double.IsFinite(x) ? JsonValue.Create(x) : null;
    private static JsonArray Ints(IEnumerable<int> xs) => new(xs.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray());
    private static JsonArray Doubles(IEnumerable<double> xs) => new(xs.Select(Finite).ToArray());

    private static JsonObject Paired(PairedComparison c, string definition) => new()
    {
        ["definition"] = definition,
        ["n"] = c.N,
        ["mean_a"] = c.MeanA,
        ["mean_b"] = c.MeanB,
        ["mean_difference"] = c.MeanDifference,
        ["sd_difference"] = c.StdDevDifference,
        ["ci95_low"] = Finite(c.Ci.Low),
        ["ci95_high"] = Finite(c.Ci.High),
        ["significant"] = c.Significant,
        ["differences"] = Doubles(c.Differences),
    };
}
