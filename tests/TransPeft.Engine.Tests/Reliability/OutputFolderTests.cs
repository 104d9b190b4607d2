using System.Diagnostics;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cli;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;
using TransPeft.Engine.Tests.Training;
using static TransPeft.Engine.Tests.Training.TrainerTestKit;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>
/// Nothing existing is destroyed: no command writes into a non-empty folder (or into one of its inputs) without
/// --overwrite, and a running training holds a lock on its folder that a second run cannot take, while a lock left
/// by a killed run is taken over.
/// </summary>
public class OutputFolderTests
{
    private static TrainingOptions Options() => new() { Steps = 3, BatchSize = 2, LearningRate = 0.05, Seed = 1 };

    private static void Refused(TpeftProcess.Result r, params string[] mentions)
    {
        var error = CliAssert.OneErrorLine(r);
        foreach (var m in mentions) Assert.Contains(m, error);
    }

    private static Dictionary<string, byte[]> Snapshot(string dir) =>
        Directory.GetFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

    [Fact]
    public void InitMergeAndTransferRefuseAFolderThatHoldsSomethingUnlessOverwriteIsGiven()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var before = Snapshot(model);

        // init over an existing model, and over a sharded one (the shards and the index would have been deleted).
        Refused(TpeftProcess.Run("init", "--out", model, "--seed", "9"), model, "not empty", "--overwrite");
        var sharded = Path.Combine(root, "sharded");
        TransformerModel.Load(model).Save(sharded, maxShardBytes: 40_000);
        var shards = Snapshot(sharded);
        Assert.True(shards.Count > 3);
        Refused(TpeftProcess.Run("init", "--out", sharded), "not empty");
        Assert.Equal(shards.Keys.Order(), Snapshot(sharded).Keys.Order());

        // merge into its own base, and over another model.
        var adapter = Path.Combine(root, "adapter");
        var lora = TinyModels.TrainedAdapter(TransformerModel.Load(model).Config);
        lora.Save(adapter);
        Refused(TpeftProcess.Run("merge", "--model", model, "--adapter", adapter, "--out", model), "input", "--overwrite");
        Refused(TpeftProcess.Run("merge", "--model", model, "--adapter", adapter, "--out", sharded), "not empty");

        // analyze-update's report over another folder, and into one of its inputs.
        Refused(TpeftProcess.Run("analyze-update", "--old", model, "--new", model, "--out", sharded), "not empty");
        Refused(TpeftProcess.Run("analyze-update", "--old", model, "--new", model, "--out", model), "input", "--overwrite");
        Assert.Equal(shards, Snapshot(sharded));

        // transfer over another adapter.
        var other = Path.Combine(root, "other-adapter");
        lora.Save(other);
        var otherBefore = Snapshot(other);
        Refused(TpeftProcess.Run("transfer", "--adapter", adapter, "--to", model, "--out", other), "not empty");
        Assert.Equal(otherBefore, Snapshot(other));
        Assert.Equal(before, Snapshot(model));

        // With --overwrite the user asked for it: init replaces the model.
        var ok = TpeftProcess.Run("init", "--out", model, "--seed", "9", "--overwrite");
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        Assert.NotEqual(before[Path.Combine(model, "model.safetensors")], File.ReadAllBytes(Path.Combine(model, "model.safetensors")));
        var merged = TpeftProcess.Run("merge", "--model", model, "--adapter", adapter, "--out", Path.Combine(root, "fresh"));
        Assert.True(merged.ExitCode == 0, merged.Stderr);
    }

    [Fact]
    public void TrainRefusesAFinishedRunWhoseCheckpointsWerePruned()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = CliFixtures.TextRecords(Path.Combine(root, "train.jsonl"), 8, 1);
        var outDir = Path.Combine(root, "run");
        string[] train = ["train", "--model", model, "--data", data, "--out", outDir, "--steps", "2", "--batch-size", "2", "--seq-len", "16", "--device", "cpu"];
        var first = TpeftProcess.RunIn(CliFixtures.CacheEnv(root), train);
        Assert.True(first.ExitCode == 0, first.Stderr);
        Directory.Delete(Path.Combine(outDir, "checkpoints"), recursive: true);
        var kept = Snapshot(outDir);

        Refused(TpeftProcess.RunIn(CliFixtures.CacheEnv(root), train), outDir, "not empty", "--overwrite");
        Assert.Equal(kept, Snapshot(outDir)); // final/ and metrics.jsonl untouched

        var again = TpeftProcess.RunIn(CliFixtures.CacheEnv(root), [.. train, "--overwrite"]);
        Assert.True(again.ExitCode == 0, again.Stderr);
    }

    [Fact]
    public void ASecondRunOnALockedFolderIsRefusedAndTheLockIsFreeAfterwards()
    {
        var dir = TempDir();
        using (var held = RunLock.Acquire(dir))
        {
            var e = Assert.Throws<OutputFolderException>(() => new Trainer(new FakeBigramModel(Vocab, 1), MakeData(false), Options(), dir).Run());
            Assert.Contains("another training run is using this folder", e.Message);
            Assert.Contains($"pid {Environment.ProcessId}", e.Message);
            Assert.Throws<OutputFolderException>(() => RunLock.Acquire(dir));
        }
        Assert.Equal(3, new Trainer(new FakeBigramModel(Vocab, 1), MakeData(false), Options(), dir).Run().Step);
        Assert.False(File.Exists(Path.Combine(dir, RunLock.OwnerFileName)));
    }

    [Fact]
    public async Task ALockLeftByAKilledRunIsTakenOverOnResume()
    {
        if (OperatingSystem.IsWindows()) return; // kill -9 semantics
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = CliFixtures.TextRecords(Path.Combine(root, "train.jsonl"), 16, 1);
        var outDir = Path.Combine(root, "run");
        using var p = TpeftChild.Start(root, "train", "--model", model, "--data", data, "--out", outDir, "--steps", "100000", "--batch-size", "2",
            "--seq-len", "16", "--save-every", "1", "--device", "cpu");
        await TpeftChild.WaitFor(p, () => new CheckpointStore(outDir).Latest() is not null);
        p.Kill(); // SIGKILL: no handler runs, the owner file stays
        await p.WaitForExitAsync();
        Assert.True(File.Exists(Path.Combine(outDir, RunLock.OwnerFileName)));
        int step = TrainerState.Load(new CheckpointStore(outDir).Latest()!).Step;

        var resumed = TpeftProcess.RunIn(CliFixtures.CacheEnv(root), "train", "--resume", outDir, "--steps", (step + 1).ToString());
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Contains($"took over the lock left by pid {p.Id}", resumed.Stdout);
    }
}

internal static class CliAssert
{
    /// <summary>The command failed with exit code 1 and exactly one "error: ..." line (no stack trace); returns it.</summary>
    public static string OneErrorLine(TpeftProcess.Result r)
    {
        Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stdout}{r.Stderr}");
        Assert.DoesNotContain("   at ", r.Stderr);
        return Assert.Single(r.Stderr.Split('\n'), l => l.StartsWith("error: ", StringComparison.Ordinal));
    }
}

/// <summary>A `tpeft` child process left running, for tests that signal or kill it.</summary>
internal static class TpeftChild
{
    public static Process Start(string root, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tpeft.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["TPEFT_THREADS"] = "1";
        psi.Environment["TPEFT_CACHE_DIR"] = Path.Combine(root, "cache");
        var p = Process.Start(psi)!;
        // Drained in the background so a full pipe never blocks the child.
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    /// <summary>Polls until <paramref name="ready"/> holds; fails when the child ends first or 60 s pass.</summary>
    public static async Task WaitFor(Process p, Func<bool> ready)
    {
        var clock = Stopwatch.StartNew();
        while (!ready())
        {
            if (p.HasExited) Assert.Fail($"tpeft ended (exit {p.ExitCode}) before it was ready");
            if (clock.Elapsed.TotalSeconds > 60) { p.Kill(); Assert.Fail("tpeft was not ready in 60 s"); }
            await Task.Delay(20);
        }
    }
}
