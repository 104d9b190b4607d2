using System.Text.Json.Nodes;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Tests.Cli;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>
/// kill -9 at random points of training and checkpoint saving, 20 times in a row, each time resuming the run:
/// every kill leaves a complete checkpoint at most one save interval behind the last step that ran, every resume
/// succeeds (taking over the dead run's lock), and the run that finishes ends with exactly the adapter of an
/// uninterrupted run (CPU training is bit-reproducible).
/// </summary>
public class CrashConsistencyTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Kills = 20;

    [Fact]
    public async Task KillingTrainingDuringCheckpointSaving20TimesLosesNothingBeyondOneSaveInterval()
    {
        if (OperatingSystem.IsWindows()) return; // SIGKILL semantics
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = CliFixtures.TextRecords(Path.Combine(root, "train.jsonl"), 16, 1);
        var outDir = Path.Combine(root, "run");
        string[] Train(string dir, int steps) =>
        [
            "train", "--model", model, "--data", data, "--out", dir, "--steps", steps.ToString(), "--batch-size", "2", "--seq-len", "16",
            "--schedule", "constant", "--save-every", "1", "--keep-checkpoints", "3", "--lora-r", "2", "--seed", "3", "--device", "cpu", "--no-plot",
        ];
        var store = new CheckpointStore(outDir);
        var rng = new Random(15);
        const int Long = 1_000_000;
        int insideSave = 0;

        for (int kill = 0; kill < Kills; kill++)
        {
            string[] args = kill == 0 ? Train(outDir, Long) : ["train", "--resume", outDir, "--no-plot"];
            using var p = TpeftChild.Start(root, args);
            // Wait until this process has run a step of its own, then kill at a random moment: with a checkpoint
            // after every step, much of the time goes to saving, so many kills land inside a save.
            int before = store.Latest() is { } l ? TrainerState.Load(l).Step : 0;
            // (The first run also waits for its first checkpoint: a run killed before any has nothing to resume.)
            await TpeftChild.WaitFor(p, () => LastLoggedStep(outDir) > before && store.Latest() is not null);
            var deadline = DateTime.UtcNow.AddMilliseconds(rng.Next(0, 150));
            while (DateTime.UtcNow < deadline && !SavingNow(store.Root)) await Task.Yield();
            if (SavingNow(store.Root)) insideSave++;
            p.Kill();
            await p.WaitForExitAsync();

            int logged = LastLoggedStep(outDir);
            var latest = store.Latest();
            Assert.NotNull(latest);
            int saved = TrainerState.Load(latest!).Step;
            Assert.True(saved >= logged - 1, $"kill {kill}: step {logged} ran but the latest checkpoint is step {saved}");
        }

        output.WriteLine($"{Kills} kills, {insideSave} of them while a checkpoint was being written");
        // The last resume runs to a fixed end; an uninterrupted run to the same end must give the same adapter.
        int end = TrainerState.Load(store.Latest()!).Step + 2;
        var finish = TpeftProcess.RunIn(CliFixtures.CacheEnv(root), "train", "--resume", outDir, "--steps", end.ToString(), "--no-plot");
        Assert.True(finish.ExitCode == 0, finish.Stderr);
        var straight = Path.Combine(root, "straight");
        var reference = TpeftProcess.RunIn(CliFixtures.CacheEnv(root), Train(straight, end));
        Assert.True(reference.ExitCode == 0, reference.Stderr);
        Assert.Equal(File.ReadAllBytes(Path.Combine(straight, "final", LoraAdapter.WeightsFileName)),
            File.ReadAllBytes(Path.Combine(outDir, "final", LoraAdapter.WeightsFileName)));
    }

    private static bool SavingNow(string checkpoints)
    {
        try { return Directory.EnumerateDirectories(checkpoints, AtomicDirectory.PartialPrefix + "*").Any(); }
        catch (DirectoryNotFoundException) { return false; }
    }

    private static int LastLoggedStep(string outDir)
    {
        var path = Path.Combine(outDir, MetricsLog.FileName);
        if (!File.Exists(path)) return 0;
        string text;
        try
        {
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            text = new StreamReader(fs).ReadToEnd();
        }
        catch (IOException) { return 0; }
        int step = 0;
        foreach (var line in text.Split('\n'))
        {
            try { if (JsonNode.Parse(line)?["loss"] is not null) step = Math.Max(step, (int)JsonNode.Parse(line)!["step"]!); }
            catch (System.Text.Json.JsonException) { } // a line being written
        }
        return step;
    }
}
