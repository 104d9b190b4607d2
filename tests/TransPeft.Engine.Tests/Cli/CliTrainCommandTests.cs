using System.Diagnostics;
using System.Text.Json.Nodes;
using TransPeft.Cli.Commands;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Cli;

/// <summary>`tpeft train` end to end: flags and config files, outputs, resume, Ctrl-C, and rejected input.</summary>
public class CliTrainCommandTests
{
    private static string[] Common(string model, string data, string outDir) =>
    [
        "train", "--model", model, "--data", data, "--out", outDir, "--batch-size", "4", "--seq-len", "16", "--lr", "1e-2",
        "--schedule", "constant", "--lora-targets", "all-linear", "--p-mask", "0.2", "--p-drop", "0.1", "--seed", "7", "--device", "cpu",
    ];

    [Fact]
    public void TrainWritesAdapterMetricsAndPlotAndAResumedRunMatchesAnUninterruptedOne()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = CliFixtures.TextRecords(Path.Combine(root, "train.jsonl"), 40, 1);
        var val = CliFixtures.TextRecords(Path.Combine(root, "val.jsonl"), 8, 2);
        // The config file sets the rank; the flag overrides it.
        var config = Path.Combine(root, "train.json");
        File.WriteAllText(config, """{ "lora_r": 4, "lora_alpha": 8, "eval_every": 2 }""");
        var env = CliFixtures.CacheEnv(root);

        var straight = TpeftProcess.RunIn(env, [.. Common(model, data, Path.Combine(root, "straight")), "--config", config, "--lora-r", "6", "--val-data", val, "--steps", "6", "--json"]);
        Assert.True(straight.ExitCode == 0, straight.Stderr);
        var doc = JsonNode.Parse(straight.Stdout)!; // stdout holds only the JSON document; progress went to stderr
        Assert.True((bool)doc["completed"]!);
        Assert.Equal(6, (int)doc["step"]!);
        Assert.Contains("step 6/6", straight.Stderr);
        Assert.Contains("validation loss", straight.Stderr);
        var final = (string)doc["final_weights"]!;
        var adapter = LoraAdapter.Load(final, TransformerModel.Load(model).Config);
        Assert.Equal(6, adapter.Config.R);
        Assert.Equal(8, adapter.Config.Alpha);
        Assert.Equal(0.2, TransPeftSettings.ReadFrom(adapter)!.PMask);
        var metrics = File.ReadAllLines(Path.Combine(root, "straight", "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(6, metrics.Count(m => m["loss"] is not null));
        Assert.Equal(3, metrics.Count(m => m["val_loss"] is not null));
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes((string)doc["loss_plot"]!).Take(4).ToArray());
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(root, "cache", "tokens"), "*", SearchOption.AllDirectories));

        // Four steps, then --resume with nothing but a larger --steps: the recorded options are reused.
        var first = TpeftProcess.RunIn(env, [.. Common(model, data, Path.Combine(root, "split")), "--config", config, "--lora-r", "6", "--val-data", val, "--steps", "4"]);
        Assert.True(first.ExitCode == 0, first.Stderr);
        Assert.Contains("step 4/4", first.Stdout); // not a terminal: plain progress lines, then the summary table
        var resumed = TpeftProcess.RunIn(env, "train", "--resume", Path.Combine(root, "split"), "--steps", "6", "--json");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Contains("resuming at step 4 of 6", resumed.Stderr);
        Assert.Equal(File.ReadAllBytes(Path.Combine(final, LoraAdapter.WeightsFileName)),
            File.ReadAllBytes(Path.Combine((string)JsonNode.Parse(resumed.Stdout)!["final_weights"]!, LoraAdapter.WeightsFileName)));
    }

    /// <summary>SIGINT is Ctrl-C; SIGTERM is what kill, docker stop and Slurm send: both checkpoint and exit with 1.</summary>
    [Theory]
    [InlineData("INT")]
    [InlineData("TERM")]
    public async Task ASignalStopsAfterTheCurrentStepWithACheckpointThatResumes(string signal)
    {
        if (OperatingSystem.IsWindows()) return; // signals are sent with kill(1)
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = CliFixtures.TextRecords(Path.Combine(root, "train.jsonl"), 40, 1);
        var outDir = Path.Combine(root, "run");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tpeft.dll"));
        foreach (var a in Common(model, data, outDir)) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "--steps", "100000", "--json" }) psi.ArgumentList.Add(a);
        psi.Environment["TPEFT_THREADS"] = "1";
        psi.Environment["TPEFT_CACHE_DIR"] = Path.Combine(root, "cache");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        var metrics = Path.Combine(outDir, "metrics.jsonl");
        var clock = Stopwatch.StartNew();
        while (!(File.Exists(metrics) && File.ReadAllText(metrics).Contains("\"loss\"")) && clock.Elapsed.TotalSeconds < 60 && !p.HasExited) await Task.Delay(50);
        if (p.HasExited) Assert.Fail($"tpeft ended before it was interrupted: {await stderr}");
        using (var kill = Process.Start("kill", [$"-{signal}", p.Id.ToString()])!) await kill.WaitForExitAsync();
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60))) await p.WaitForExitAsync(timeout.Token);
        Assert.Equal(1, p.ExitCode);
        string err = await stderr;
        var doc = JsonNode.Parse(await stdout)!;
        Assert.True((bool)doc["interrupted"]!);
        int step = (int)doc["step"]!;
        Assert.Contains("tpeft train --resume", err);
        Assert.True(Directory.Exists((string)doc["last_checkpoint"]!));
        Assert.Equal(step, TrainerState.Load((string)doc["last_checkpoint"]!).Step);

        var resumed = TpeftProcess.RunIn(CliFixtures.CacheEnv(root), "train", "--resume", outDir, "--steps", (step + 1).ToString(), "--json");
        Assert.True(resumed.ExitCode == 0, resumed.Stderr);
        Assert.Equal(step + 1, (int)JsonNode.Parse(resumed.Stdout)!["step"]!);
    }

    [SkippableFact]
    public void TrainOnCudaEmulatedRunsTheRealKernelsAndMatchesTheCpuWithRecomputeAndGraphs()
    {
        // The unchanged CUDA backend on kernels/*.cu compiled for the host: bf16 weights and activations against the
        // CPU's fp32, so every step's loss agrees to bf16 accuracy, not bit for bit.
        Cuda.Backend.HostEmulatedBackend.Require(); // builds the library once (or skips without g++)
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = CliFixtures.TextRecords(Path.Combine(root, "train.jsonl"), 24, 1);
        var env = CliFixtures.CacheEnv(root);
        double[] Losses(string device, bool recompute = false, bool graphs = false)
        {
            var outDir = Path.Combine(root, device + (recompute ? "-recompute" : "") + (graphs ? "-graphs" : ""));
            var args = Common(model, data, outDir);
            args[Array.IndexOf(args, "cpu")] = device;
            var r = TpeftProcess.RunIn(env, [.. args, "--steps", "3", "--json", .. recompute ? new[] { "--recompute" } : [], .. graphs ? new[] { "--cuda-graphs" } : []]);
            Assert.True(r.ExitCode == 0, r.Stderr);
            if (device == "cuda-emulated") Assert.Contains("device: cuda-emulated", r.Stderr);
            if (graphs)
            {
                // Every micro-batch ran as a graph; the packed batches share one shape, so most were replays.
                var m = System.Text.RegularExpressions.Regex.Match(r.Stderr, @"CUDA graphs: (\d+) captured, (\d+) launched");
                Assert.True(m.Success, r.Stderr);
                int captured = int.Parse(m.Groups[1].Value), launched = int.Parse(m.Groups[2].Value);
                Assert.True(launched >= 3 && captured < launched, $"{captured} captured, {launched} launched");
            }
            return File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!["loss"])
                .Where(x => x is not null).Select(x => (double)x!).ToArray();
        }
        var cpu = Losses("cpu");
        var emulated = Losses("cuda-emulated");
        Assert.Equal(3, cpu.Length);
        Assert.Equal(cpu.Length, emulated.Length);
        for (int i = 0; i < cpu.Length; i++)
            Assert.True(Math.Abs(cpu[i] - emulated[i]) <= 2e-2 * Math.Abs(cpu[i]), $"step {i + 1}: cpu loss {cpu[i]}, cuda-emulated {emulated[i]}");
        // --recompute gives the same gradients, so the same trajectory to the bit, on both devices.
        Assert.Equal(cpu, Losses("cpu", recompute: true));
        Assert.Equal(emulated, Losses("cuda-emulated", recompute: true));
        // --cuda-graphs replays captured steps whose per-step values come from device memory: the same trajectory.
        Assert.Equal(emulated, Losses("cuda-emulated", graphs: true));
    }

    [Fact]
    public void BadFlagsAndConfigsAreRejectedNamingTheField()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var data = CliFixtures.TextRecords(Path.Combine(root, "train.jsonl"), 8, 1);
        var env = CliFixtures.CacheEnv(root);
        string outDir = Path.Combine(root, "out");

        void Rejected(string[] args, params string[] mentions)
        {
            var r = TpeftProcess.RunIn(env, args);
            Assert.True(r.ExitCode == 1, $"exit {r.ExitCode}: {r.Stdout}{r.Stderr}");
            foreach (var m in mentions) Assert.Contains(m, r.Stderr);
            Assert.DoesNotContain("   at ", r.Stderr);
            Assert.False(Directory.Exists(Path.Combine(outDir, "checkpoints")));
        }

        Rejected(["train", "--model", model, "--data", data, "--out", outDir, "--lora-r", "abc"], "--lora-r", "lora_r", "\"abc\"");
        Rejected(["train", "--model", model, "--data", data, "--out", outDir, "--p-mask", "1.5"], "--p-mask", "p_mask", "[0, 1)");
        Rejected(["train", "--model", model, "--data", data, "--out", outDir, "--lora-targets", "q_proj,attn"], "lora_targets", "attn");
        Rejected(["train", "--model", model, "--data", data, "--out", outDir, "--optimizer", "adam"], "optimizer", "adamw, sgd");
        Rejected(["train", "--model", model, "--data", data, "--out", outDir, "--steps", "5", "--epochs", "2"], "steps", "epochs");
        Rejected(["train", "--model", model, "--out", outDir, "--steps", "1"], "data");
        Rejected(["train", "--model", model, "--data", data, "--out", outDir, "--full", "--method", "lora"], "--full", "--method lora");
        Rejected(["train", "--model", model, "--data", data, "--out", outDir, "--steps", "1", "--device", "cuda"], "--device cuda", "run with --device cpu (or auto)");

        var unknown = Path.Combine(root, "unknown.json");
        File.WriteAllText(unknown, """{ "lora_rank": 4 }""");
        Rejected(["train", "--config", unknown, "--model", model, "--data", data, "--out", outDir], unknown, "lora_rank", "did you mean 'lora_r'");
        var wrongType = Path.Combine(root, "wrong.json");
        File.WriteAllText(wrongType, """{ "batch_size": "four" }""");
        Rejected(["train", "--config", wrongType, "--model", model, "--data", data, "--out", outDir], wrongType, "batch_size", "positive integer");
        Rejected(["train", "--config", Path.Combine(root, "missing.json"), "--model", model, "--data", data, "--out", outDir], "missing.json");
        Rejected(["train", "--resume", Path.Combine(root, "nothing-here")], "--resume", "nothing-here");
    }

    [Fact]
    public void EveryTrainingOptionHasAFlagWithHelpText()
    {
        var flags = TrainingFlags.Create();
        Assert.Equal(TrainingOptionsJson.FieldNames, flags.Select(f => f.Field));
        var help = TpeftProcess.Run("train", "--help");
        Assert.Equal(0, help.ExitCode);
        foreach (var field in TrainingOptionsJson.FieldNames)
            Assert.Contains($"[config: {field};", help.Stdout.ReplaceLineEndings(" "));
        foreach (var flag in new[] { "--full", "--lora-r", "--rslora", "--adapter-init", "--warmup", "--grad-accum", "--p-mask", "--p-drop", "--val-fraction", "--resume", "--config", "--device" })
            Assert.Contains(flag, help.Stdout);
    }
}

/// <summary>Token ids need no tokenizer: a folder with only config.json and weights trains and scores on pre-tokenized records.</summary>
public class CliTokenIdsWithoutTokenizerTests
{
    [Fact]
    public void TrainAndScoreWorkOnAModelFolderWithOnlyConfigAndWeights()
    {
        var root = TpeftProcess.TempDir();
        var bare = Path.Combine(root, "bare");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", bare, "--preset", "micro", "--vocab-size", "64", "--seed", "1").ExitCode);
        Assert.Equal(new[] { "config.json", "model.safetensors" }, Directory.GetFiles(bare).Select(f => Path.GetFileName(f)).Order().ToArray());
        var rng = new Random(3);
        string data = Path.Combine(root, "tok.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 12).Select(_ =>
            new JsonObject { ["input_ids"] = new JsonArray(Enumerable.Range(0, 10).Select(_ => (JsonNode)rng.Next(64)).ToArray()) }.ToJsonString()));
        var env = CliFixtures.CacheEnv(root);
        var run = TpeftProcess.RunIn(env, "train", "--model", bare, "--data", data, "--out", Path.Combine(root, "run"), "--steps", "2",
            "--batch-size", "2", "--seq-len", "10", "--device", "cpu", "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        var adapterDir = (string)JsonNode.Parse(run.Stdout)!["final_weights"]!;
        Assert.True(File.Exists(Path.Combine(adapterDir, LoraAdapter.WeightsFileName)));
        var score = TpeftProcess.Run("score", "--model", bare, "--adapter", adapterDir, "--data", data, "--json");
        Assert.True(score.ExitCode == 0, score.Stderr);
        Assert.Equal(12 * 9, (int)JsonNode.Parse(score.Stdout)!["tokens"]!); // every token but each record's first is a target

        // Text still needs a tokenizer, and the message says what to do.
        string text = CliFixtures.TextRecords(Path.Combine(root, "text.jsonl"), 4, 1);
        var refused = TpeftProcess.RunIn(env, "train", "--model", bare, "--data", text, "--out", Path.Combine(root, "run2"), "--steps", "1", "--device", "cpu");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("has no tokenizer, so only pre-tokenized records", refused.Stderr);
    }
}
