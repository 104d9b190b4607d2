using System.Text.Json.Nodes;
using TransPeft.Engine.Text;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Training;

/// <summary>The real CPU model trained end to end through <see cref="TrainingRun"/>.</summary>
public class TrainingRunTests
{
    private static readonly string[] Words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];

    /// <summary>A micro model with a compact tokenizer trained on the task's own text, and train/validation files.</summary>
    private static (string Model, string Train, string Val) Setup(string root, int seed)
    {
        var rng = new Random(seed);
        string Line() { int s = rng.Next(0, 6); return string.Join(" ", Words.Skip(s).Take(7)) + "."; }
        var train = Enumerable.Range(0, 120).Select(_ => new JsonObject { ["text"] = Line() }.ToJsonString()).ToList();
        var val = Enumerable.Range(0, 24).Select(_ => new JsonObject { ["text"] = Line() }.ToJsonString()).ToList();
        File.WriteAllLines(Path.Combine(root, "train.jsonl"), train);
        File.WriteAllLines(Path.Combine(root, "val.jsonl"), val);
        var tok = CompactGpt2Tokenizer.Train([string.Join("\n", Words) + " ."], vocabSize: 300);
        var modelDir = Path.Combine(root, "base");
        var cfg = ModelPresets.Get("micro") with { VocabSize = 320, MaxPositionEmbeddings = 64 };
        TransformerModel.CreateRandom(cfg, seed).Save(modelDir);
        tok.Save(Path.Combine(modelDir, TokenizerLoader.CompactFileName));
        return (modelDir, Path.Combine(root, "train.jsonl"), Path.Combine(root, "val.jsonl"));
    }

    private static TrainingOptions Options(string model, string train, string val, string outDir, TrainingMethod method, int steps) => new()
    {
        Model = model, Data = train, ValData = val, Output = outDir, Method = method, Steps = steps, BatchSize = 8, SeqLen = 16,
        LearningRate = method == TrainingMethod.Full ? 3e-3 : 1e-2, Schedule = ScheduleKind.Constant, WarmupSteps = 0, Seed = 5,
        EvalEvery = steps, LoraR = 8, LoraAlpha = 16, LoraTargets = ["all-linear"], Pack = false,
    };

    private static double ValLoss(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).Where(n => n["val_loss"] is not null).Select(n => (double)n["val_loss"]!).Last();

    [Fact]
    public void FullTrainingLearnsTheTaskOnHeldOutData()
    {
        var root = TpeftProcess.TempDir();
        var (model, train, val) = Setup(root, 1);
        var untrained = TrainingRun.Execute(Options(model, train, val, Path.Combine(root, "probe"), TrainingMethod.Full, 1) with { LearningRate = 1e-12 });
        var result = TrainingRun.Execute(Options(model, train, val, Path.Combine(root, "full"), TrainingMethod.Full, 60));
        Assert.True(result.Completed);
        double before = untrained.LastValLoss!.Value, after = ValLoss(Path.Combine(root, "full"));
        Assert.True(after < 0.4 * before, $"held-out loss {before:F3} -> {after:F3}");
        // The saved model is a complete, loadable HF folder with its tokenizer.
        var saved = Path.Combine(root, "full", "final");
        Assert.Equal(320, TransformerModel.Load(saved).Config.VocabSize);
        Assert.IsType<CompactGpt2Tokenizer>(TokenizerLoader.Load(saved).Tokenizer);
    }

    [Fact]
    public void TransPeftLoraRunSavesAPeftAdapterWithItsSettingsAndResumesBitIdentically()
    {
        var root = TpeftProcess.TempDir();
        var (model, train, val) = Setup(root, 2);
        var o = Options(model, train, val, Path.Combine(root, "whole"), TrainingMethod.Lora, 8) with { PMask = 0.2, PDrop = 0.3, LoraDropout = 0.1, SaveEvery = 4 };
        var whole = TrainingRun.Execute(o);
        var cts = new CancellationTokenSource();
        var progress = new SyncProgress(p => { if (p.Event == TrainingEvent.Step && p.Step == 4) cts.Cancel(); });
        var first = TrainingRun.Execute(o with { Output = Path.Combine(root, "split") }, progress, cancel: cts.Token);
        Assert.True(first.Interrupted);
        // What a host driving runs over time reads from the folder: not finished, resumable from step 4.
        var folder = new TrainingRunFolder(Path.Combine(root, "split"));
        Assert.False(folder.IsFinished);
        Assert.Equal(Path.GetFullPath(first.LastCheckpoint!), Path.GetFullPath(folder.LatestCheckpoint!));
        Assert.EndsWith("step-00000004", folder.LatestCheckpoint);
        Assert.Null(new TrainingRunFolder(Path.Combine(root, "never-run")).LatestCheckpoint);
        var second = TrainingRun.Execute(o with { Output = folder.Path }, resumeFrom: folder.Path);
        Assert.Equal(whole.SessionLosses.Skip(4), second.SessionLosses);
        Assert.True(folder.IsFinished);
        Assert.Equal(Path.GetFullPath(second.FinalWeights!), Path.GetFullPath(folder.FinalWeights));
        Assert.Equal(8, File.ReadLines(folder.Metrics).Count(l => JsonNode.Parse(l)!["loss"] is not null));
        var adapterDir = whole.FinalWeights!;
        var adapter = LoraAdapter.Load(adapterDir, TransformerModel.Load(model).Config);
        Assert.Equal(0.2, TransPeftSettings.ReadFrom(adapter)!.PMask);
        Assert.Equal(File.ReadAllBytes(Path.Combine(adapterDir, LoraAdapter.WeightsFileName)),
            File.ReadAllBytes(Path.Combine(second.FinalWeights!, LoraAdapter.WeightsFileName)));
    }

    private sealed class SyncProgress(Action<TrainingProgress> on) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => on(value);
    }
}
