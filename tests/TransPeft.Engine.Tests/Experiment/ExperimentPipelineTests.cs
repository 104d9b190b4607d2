using System.Text.Json.Nodes;
using TransPeft.Experiments;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Experiment;

/// <summary>
/// The whole experiment pipeline (data, v1, v2, analysis, adapters, transfer, evaluation, statistics, report,
/// plots) on synthetic data and a test-sized model, with real training: results.json's structure and arithmetic,
/// the report's verdict, and an interrupted run that resumes to exactly the results of an uninterrupted one.
/// </summary>
public class ExperimentPipelineTests
{
    internal static ExperimentPreset TestPreset => new()
    {
        Name = "test",
        Description = "pipeline test",
        DataPreset = "synthetic",
        Model = new ModelConfig
        {
            ModelType = "llama", HiddenSize = 32, IntermediateSize = 64, NumLayers = 2, NumHeads = 4, NumKvHeads = 2, HeadDim = 8,
            VocabSize = 320, MaxPositionEmbeddings = 64, RopeTheta = 10000, EosTokenIds = [0], BosTokenId = null,
        },
        V1 = new() { Steps = 16, BatchSize = 4, SeqLen = 32, LearningRate = 5e-3, Evaluations = 2, EvalSequences = 4, Checkpoints = 2 },
        V2 = new() { Steps = 4, BatchSize = 4, SeqLen = 32, LearningRate = 1e-3, ReplayFraction = 0.5, Evaluations = 1, EvalSequences = 4, Checkpoints = 1 },
        Adapter = new() { Steps = 6, BatchSize = 4, LearningRate = 1e-2, Rank = 4, Alpha = 8, SeqLen = 48 },
        Variants = [new(0, 0.3), new(0.2, 0)],
        Seeds = [1, 2],
        HeldOutSequences = 4,
    };

    private static (ExperimentResults Results, List<string> Log) Run(string outDir, SyntheticExperimentData? source = null, ExperimentPreset? preset = null,
        Func<string, bool>? cancelWhen = null)
    {
        var log = new List<string>();
        using var cts = new CancellationTokenSource();
        var runner = new ExperimentRunner(preset ?? TestPreset, outDir, source ?? new SyntheticExperimentData(), line =>
        {
            log.Add(line);
            if (cancelWhen?.Invoke(line) == true) cts.Cancel();
        });
        return (runner.Run(cancel: cts.Token), log);
    }

    private static double D(JsonNode? n) => n!.GetValue<double>();

    [Fact]
    public void ResultsJsonHoldsEveryRowAndSeedWithConsistentStatistics()
    {
        var outDir = Path.Combine(TempDirs.Create("tpeft-experiment"), "out");
        var (results, _) = Run(outDir);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "results.json")))!.AsObject();

        Assert.Equal(ExperimentResults.Format, json["format"]!.GetValue<string>());
        var tasks = json["tasks"]!.AsArray();
        Assert.Equal(["toy-class", "toy-define"], tasks.Select(t => t!["name"]!.GetValue<string>()));
        var define = tasks[1]!["metrics"]!.AsArray();
        Assert.Equal(["loss", "loss[rewritten]", "loss[stable]"], define.Select(m => m!["key"]!.GetValue<string>()));
        Assert.Equal(["accuracy", "decision_loss"], tasks[0]!["metrics"]!.AsArray().Select(m => m!["key"]!.GetValue<string>()));

        foreach (var metric in tasks.SelectMany(t => t!["metrics"]!.AsArray()))
        {
            var rows = metric!["rows"]!.AsArray().Select(r => r!.AsObject()).ToList();
            Assert.Equal(["FineTuneOld", "DirectTransfer", "TransPeftTransfer", "TransPeftTransfer", "RetuneNew", "TransPeftOnOld", "TransPeftOnOld"],
                rows.Select(r => r["kind"]!.GetValue<string>()));
            foreach (var row in rows)
            {
                var values = row["values"]!.AsArray().Select(D).ToList();
                Assert.Equal([1, 2], row["seeds"]!.AsArray().Select(s => s!.GetValue<int>()));
                Assert.Equal(2, values.Count);
                Assert.All(values, v => Assert.True(double.IsFinite(v)));
                Assert.Equal(values.Average(), D(row["mean"]), 12);
                Assert.Equal(Math.Abs(values[0] - values[1]) / Math.Sqrt(2), D(row["sd"]), 12);
            }
            double[] Values(string kind, string variant = "plain") =>
                rows.First(r => r["kind"]!.GetValue<string>() == kind && r["variant"]!.GetValue<string>() == variant)["values"]!.AsArray().Select(D).ToArray();
            var old = Values("FineTuneOld"); var direct = Values("DirectTransfer"); var retune = Values("RetuneNew");
            // Retention = Direct − FT_old and the gap = Re-tune − Direct, per seed.
            var retention = metric["retention"]!;
            Assert.Equal(direct.Zip(old, (d, o) => d - o), retention["differences"]!.AsArray().Select(D));
            Assert.True(D(retention["ci95_low"]) <= D(retention["mean_difference"]) && D(retention["mean_difference"]) <= D(retention["ci95_high"]));
            Assert.Equal(retune.Zip(direct, (r, d) => r - d), metric["gap"]!["differences"]!.AsArray().Select(D));
            foreach (var tp in metric["trans_peft"]!.AsArray())
            {
                var transfer = Values("TransPeftTransfer", tp!["variant"]!.GetValue<string>());
                var onOld = Values("TransPeftOnOld", tp["variant"]!.GetValue<string>());
                if (retune.Average() == direct.Average()) Assert.Null(tp["gap_recovered"]); // no gap: the share is undefined
                else Assert.Equal((transfer.Average() - direct.Average()) / (retune.Average() - direct.Average()), D(tp["gap_recovered"]), 9);
                Assert.Equal(transfer.Zip(direct, (t, d) => t - d), tp["vs_direct"]!["differences"]!.AsArray().Select(D));
                Assert.Equal(transfer.Zip(onOld, (t, o) => t - o), tp["retention"]!["differences"]!.AsArray().Select(D));
                // The outcome follows from the interval of TP − Direct and the metric's direction.
                var vs = tp["vs_direct"]!;
                bool higher = metric["higher_is_better"]!.GetValue<bool>();
                string expected = D(vs["ci95_low"]) > 0 ? (higher ? "Helps" : "Hurts") : D(vs["ci95_high"]) < 0 ? (higher ? "Hurts" : "Helps") : "NoSignificantEffect";
                Assert.Equal(expected, tp["outcome"]!.GetValue<string>());
            }
        }

        // Training happened: v1 learned corpus A, the update moved v2 away from v1 but not far.
        Assert.True(D(json["bases"]!["v1"]!["final_val_loss"]) < D(json["bases"]!["v1"]!["first_val_loss"]));
        var update = json["update"]!;
        Assert.InRange(D(update["ffn_change"]), 1e-4, 1.0);
        Assert.True(D(update["heldout_loss"]!["corpus_b"]!["v2"]) < D(update["heldout_loss"]!["corpus_b"]!["v1"]), "the update lowers the loss on corpus B");

        // The verdict is drawn from the per-task outcomes of the headline variant, and the report states it.
        var verdict = json["verdict"]!;
        var headline = tasks.Select(t => t!["metrics"]!.AsArray().First(m => m!["primary"]!.GetValue<bool>())!["trans_peft"]!.AsArray()
            .First(v => v!["variant"]!.GetValue<string>() == "drop0.3")!["outcome"]!.GetValue<string>()).ToList();
        string outcome = headline.Contains("Helps") && headline.Contains("Hurts") ? "mixed" : headline.Contains("Helps") ? "helps" : headline.Contains("Hurts") ? "hurts" : "no significant effect";
        Assert.Equal(outcome, verdict["outcome"]!.GetValue<string>());
        var report = File.ReadAllText(Path.Combine(outDir, "report.md"));
        Assert.Contains(verdict["headline"]!.GetValue<string>(), report);
        Assert.Contains($"Outcome: `{outcome}`", report);
        foreach (var row in new[] { "Fine-tune (old)", "Direct transfer", "Trans-PEFT transfer (p_drop 0.3)", "Re-tune (new)" }) Assert.Contains($"| {row} |", report);

        // Plots are real PNGs; the transfer literally moved the v1 adapter onto v2.
        foreach (var png in new[] { "bars-toy-class.png", "bars-toy-define.png", "loss-v1.png", "loss-v2.png", "loss-adapter.png", "update-heatmap.png" })
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(Path.Combine(outDir, "plots", png))[..4]);
        var layout = new ExperimentLayout(outDir);
        var key = new AdapterKey("toy-define", new AdapterVariant(0, 0.3), AdapterKey.OldBase, 1);
        using (var moved = SafetensorsReader.Open(Path.Combine(layout.Transferred(key), LoraAdapter.WeightsFileName)))
        using (var original = SafetensorsReader.Open(Path.Combine(layout.Adapter(key), LoraAdapter.WeightsFileName)))
        {
            Assert.Equal(Path.GetFullPath(layout.V1), moved.Metadata[AdapterTransfer.TransferredFromKey]);
            Assert.All(original.Names, n => Assert.Equal(original.GetBytes(n).ToArray(), moved.GetBytes(n).ToArray()));
        }
        Assert.Equal(0.3, TransPeftSettings.ReadFrom(LoraAdapter.Load(layout.Adapter(key), TransformerModel.Load(layout.V1).Config))!.PDrop);
        Assert.Equal(results.Verdict.Outcome, outcome);
    }

    [Fact]
    public void AnInterruptedRunResumesToTheSameResultsAndSkipsFinishedStages()
    {
        var root = TempDirs.Create("tpeft-experiment");
        var (whole, _) = Run(Path.Combine(root, "whole"));

        var outDir = Path.Combine(root, "split");
        var source = new SyntheticExperimentData();
        const string cutIn = "toy-define/drop0.3-v1-seed2: step 1/";
        var ex = Assert.ThrowsAny<OperationCanceledException>(() => Run(outDir, source, cancelWhen: l => l.Contains(cutIn)));
        Assert.Contains("checkpoint saved", ex.Message);
        var layout = new ExperimentLayout(outDir);
        var cut = new AdapterKey("toy-define", new AdapterVariant(0, 0.3), AdapterKey.OldBase, 2);
        var stages = new StageStore(outDir);
        Assert.False(stages.IsDone(cut.TrainStage));
        Assert.True(stages.IsDone("base/v2"));
        Assert.True(Directory.Exists(Path.Combine(layout.AdapterRun(cut), "checkpoints")));
        Assert.False(File.Exists(layout.Results));

        var (resumed, log) = Run(outDir, source);
        Assert.Equal(1, source.PrepareCalls); // the data stage was not run again
        Assert.Contains(log, l => l.Contains("base v1: finished earlier"));
        Assert.Contains(log, l => l.Contains($"{cut.Task}/{cut.Id}: resuming from"));
        Assert.DoesNotContain(log, l => l.Contains("adapter toy-class/plain-v1-seed1:")); // finished before the cut, not retrained

        // Bit-identical resume: every value of every row equals the uninterrupted run's.
        foreach (var (a, b) in whole.Tasks.SelectMany(t => t.Metrics).Zip(resumed.Tasks.SelectMany(t => t.Metrics)))
            foreach (var (ra, rb) in a.Rows.Zip(b.Rows))
                Assert.Equal(ra.Values, rb.Values);
        Assert.Equal(whole.Verdict.Text, resumed.Verdict.Text);
    }

    [Fact]
    public void AFolderHoldingARunWithOtherSettingsIsRefusedUnlessRestarted()
    {
        var outDir = Path.Combine(TempDirs.Create("tpeft-experiment"), "out");
        var preset = TestPreset with { Seeds = [1, 2], Tasks = ["toy-class"] };
        Run(outDir, preset: preset);
        var changed = preset with { Adapter = preset.Adapter with { Steps = 7 } };
        var e = Assert.Throws<InvalidOperationException>(() => Run(outDir, preset: changed));
        Assert.Contains("preset.adapter.steps: 6 then, 7 now", e.Message);
        Assert.Contains("--restart", e.Message);

        var runner = new ExperimentRunner(changed, outDir, new SyntheticExperimentData(), _ => { });
        var results = runner.Run(restart: true);
        Assert.Equal(7, JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "experiment.json")))!["preset"]!["adapter"]!["steps"]!.GetValue<int>());
        Assert.Single(results.Tasks);
    }
}
