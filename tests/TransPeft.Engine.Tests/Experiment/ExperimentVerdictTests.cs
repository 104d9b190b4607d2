using System.Text.Json.Nodes;
using TransPeft.Experiments;
using TransPeft.Experiments.Data;
using TransPeft.Experiments.Data.Tasks;
using TransPeft.Engine.Evaluation;

namespace TransPeft.Engine.Tests.Experiment;

/// <summary>The verdict and the report follow the numbers: results built from stage markers with chosen values.</summary>
public class ExperimentVerdictTests
{
    private static readonly AdapterVariant Drop = new(0, 0.1);

    private static ExperimentPreset Preset(params int[] seeds) => ExperimentPipelineTests.TestPreset with { Variants = [Drop], Seeds = seeds };

    private static TaskSpec Spec(string name, bool classification)
    {
        var info = new TaskInfo(name, classification ? TaskKind.Classification : TaskKind.Generation, "", "",
            classification ? [new("a", " a"), new("b", " b")] : [], [], 1, new JsonObject());
        MetricSpec metric = classification ? new(MetricSpec.Accuracy, "accuracy", true, true) : new(MetricSpec.Loss, "completion loss", false, true);
        return new TaskSpec(name, info, new TaskPaths(name, "/nowhere"), [], [], [metric]);
    }

    /// <summary>Eval markers for one task: value(row, seed index) per row of the protocol.</summary>
    private static void AddTask(Dictionary<string, StageRecord> stages, TaskSpec task, int[] seeds, Func<RowKind, int, double> value)
    {
        foreach (var (kind, variant) in new[] { (RowKind.FineTuneOld, AdapterVariant.Plain), (RowKind.DirectTransfer, AdapterVariant.Plain),
                     (RowKind.TransPeftTransfer, Drop), (RowKind.TransPeftOnOld, Drop), (RowKind.RetuneNew, AdapterVariant.Plain) })
            for (int i = 0; i < seeds.Length; i++)
            {
                var (adapterBase, evalBase) = new RowResult(kind, variant, [], []).Bases;
                var id = new AdapterKey(task.Name, variant, adapterBase, seeds[i]).EvalStage(evalBase);
                stages[id] = new StageRecord(id, 1, 2, DateTimeOffset.UnixEpoch, new JsonObject { ["metrics"] = new JsonObject { [task.Primary.Key] = value(kind, i) } });
            }
    }

    private static Dictionary<string, StageRecord> BaseStages() => new[] { "data", "base/v1", "base/v2", "base/analysis" }
        .ToDictionary(id => id, id => new StageRecord(id, 10, 20, DateTimeOffset.UnixEpoch, new JsonObject()));

    private static readonly double[] Noise = [0.004, -0.003, 0.001, -0.002];

    [Fact]
    public void AConsistentImprovementOverDirectTransferIsAHelpVerdictWithItsNumbers()
    {
        int[] seeds = [1, 2, 3, 4];
        var stages = BaseStages();
        var task = Spec("spam", classification: true);
        // FT_old 90%, Direct 80%, Trans-PEFT 86% (always 6 points above Direct), Re-tune 90%.
        AddTask(stages, task, seeds, (row, i) => row switch
        {
            RowKind.FineTuneOld => 0.90 + Noise[i],
            RowKind.DirectTransfer => 0.80 + Noise[i],
            RowKind.TransPeftTransfer => 0.86 + Noise[i] + 0.002 * i,
            RowKind.TransPeftOnOld => 0.89 + Noise[i],
            _ => 0.90 - Noise[i],
        });
        var r = ExperimentResults.Build(Preset(seeds), [task], stages, TimeSpan.FromSeconds(1));
        var c = r.Tasks[0].Primary.TransPeft[0];
        Assert.Equal(TransferOutcome.Helps, c.Outcome);
        Assert.InRange(c.GapRecovered, 0.629, 0.631);
        Assert.Equal(ExperimentVerdict.Helps, r.Verdict.Outcome);
        Assert.True(r.Tasks[0].Primary.Retention.Significant);
        Assert.Equal(-0.10, r.Tasks[0].Primary.Retention.MeanDifference, 9);

        var report = ReportWriter.Write(r, new ExperimentLayout(Path.GetTempPath()), []);
        Assert.Contains("**Trans-PEFT (p_drop 0.1) transferred better than the plain adapter on 1 of 1 tasks and worse on none.**", report);
        Assert.Contains("Direct 80.0%", report);
        Assert.Contains("gap recovered 63%", report);
        Assert.Contains("| Trans-PEFT transfer (p_drop 0.1) | 86.3 ± 0.", report);
    }

    [Fact]
    public void DifferencesWithinNoiseGiveNoEffectAndALossThatRisesIsAHurt()
    {
        int[] seeds = [1, 2, 3];
        var stages = BaseStages();
        var cls = Spec("spam", classification: true);
        var gen = Spec("define", classification: false);
        // spam: Trans-PEFT within ±1 point of Direct, both ways. define: Trans-PEFT's loss 0.2 nats above Direct on every seed.
        AddTask(stages, cls, seeds, (row, i) => row == RowKind.TransPeftTransfer ? 0.80 + (i == 1 ? -0.01 : 0.01) : row == RowKind.DirectTransfer ? 0.80 : 0.85);
        AddTask(stages, gen, seeds, (row, i) => row switch
        {
            RowKind.DirectTransfer => 5.0 + Noise[i],
            RowKind.TransPeftTransfer => 5.2 + Noise[i] + 0.002 * i,
            _ => 4.8 + Noise[i],
        });
        var r = ExperimentResults.Build(Preset(seeds), [cls, gen], stages, TimeSpan.FromSeconds(1));
        Assert.Equal(TransferOutcome.NoSignificantEffect, r.Tasks[0].Primary.TransPeft[0].Outcome);
        Assert.Equal(TransferOutcome.Hurts, r.Tasks[1].Primary.TransPeft[0].Outcome);
        Assert.Equal(ExperimentVerdict.Hurts, r.Verdict.Outcome);
        Assert.StartsWith("Trans-PEFT (p_drop 0.1) transferred worse than the plain adapter on 1 of 2 tasks", r.Verdict.Headline);

        // Without the hurt, nothing is significant: the verdict says so.
        var calm = BaseStages();
        AddTask(calm, cls, seeds, (row, i) => row == RowKind.TransPeftTransfer ? 0.80 + (i == 1 ? -0.01 : 0.01) : row == RowKind.DirectTransfer ? 0.80 : 0.85);
        var none = ExperimentResults.Build(Preset(seeds), [cls], calm, TimeSpan.FromSeconds(1));
        Assert.Equal(ExperimentVerdict.NoEffect, none.Verdict.Outcome);
        Assert.Contains("did not measurably change", none.Verdict.Headline);
        Assert.Contains("TP − Direct +0.3 pts [-2.", none.Verdict.Details[0]);
    }

    [Fact]
    public void DecideUsesTheIntervalAndTheMetricsDirection()
    {
        var acc = new MetricSpec(MetricSpec.Accuracy, "accuracy", true, true);
        var loss = new MetricSpec(MetricSpec.Loss, "loss", false, true);
        var up = PairedComparison.Compare([0.5, 0.6, 0.7], [0.6, 0.72, 0.79]);
        var flat = PairedComparison.Compare([0.5, 0.6, 0.7], [0.6, 0.55, 0.71]);
        Assert.Equal(TransferOutcome.Helps, ExperimentVerdict.Decide(acc, up));
        Assert.Equal(TransferOutcome.Hurts, ExperimentVerdict.Decide(loss, up));
        Assert.Equal(TransferOutcome.NoSignificantEffect, ExperimentVerdict.Decide(acc, flat));
    }
}
