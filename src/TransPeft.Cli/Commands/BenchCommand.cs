using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft bench ...`: throughput figures of the engine's own paths (comparisons with libtorch live in tools/TransPeft.Bench).</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Measure the engine's throughput (prints figures; see docs/BENCHMARKS.md)");
        cmd.Subcommands.Add(Forward());
        cmd.Subcommands.Add(Train());
        return cmd;
    }

    internal sealed record BenchShape(ModelConfig Config, int Batch, int Seq, int Reps, int Warmup, int Threads);

    internal static (Option<string> preset, Option<int> batch, Option<int> seq, Option<int> reps, Option<int> threads) ShapeOptions()
    {
        var preset = new Option<string>("--preset") { Description = $"Model size: {string.Join(", ", ModelPresets.All.Keys)}", DefaultValueFactory = _ => "tiny" };
        var batch = new Option<int>("--batch") { Description = "Sequences per batch", DefaultValueFactory = _ => 16 };
        var seq = new Option<int>("--seq") { Description = "Tokens per sequence", DefaultValueFactory = _ => 256 };
        var reps = new Option<int>("--reps") { Description = "Measured repetitions (after 2 warm-ups)", DefaultValueFactory = _ => 5 };
        var threads = new Option<int>("--threads") { Description = "CPU threads (default: all cores, or TPEFT_THREADS)", DefaultValueFactory = _ => 0 };
        return (preset, batch, seq, reps, threads);
    }

    private static Command Forward()
    {
        var (preset, batch, seq, reps, threads) = ShapeOptions();
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("forward", "Tokens/s of the CPU forward pass (logits + loss) for a named size") { preset, batch, seq, reps, threads, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            var options = BenchOptions(p, device, threads);
            var config = ModelPresets.Get(p.GetValue(preset)!);
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(reps);
            using var session = InferenceSession.FromModel(TransformerModel.CreateRandom(config, 1), options with { MaxBatchSize = Math.Max(1, b) });
            using var m = session.CreateContext();
            var rng = new Random(2);
            var ids = Enumerable.Range(0, b * t).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var batchData = Engine.Training.TokenBatch.FromIds(b, t, ids);
            var times = Measure(() => m.Loss(batchData), n);
            Report("forward", config, p.GetValue(preset)!, b, t, times, p.GetValue(json));
            return 0;
        }));
        return cmd;
    }

    private static Command Train()
    {
        var (preset, batch, seq, reps, threads) = ShapeOptions();
        var rank = new Option<int>("--lora-r") { Description = "LoRA rank of the LoRA step", DefaultValueFactory = _ => 8 };
        var targets = new Option<string>("--lora-targets") { Description = "Modules with an adapter in the LoRA step (comma-separated, or all-linear)", DefaultValueFactory = _ => "all-linear" };
        var method = new Option<string>("--method") { Description = "lora | full | both", DefaultValueFactory = _ => "both" };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("train",
            "Tokens/s of one optimizer step on the CPU: forward + backward (CpuTransformer.ForwardBackward), gradient clipping and the AdamW update, "
            + "for a LoRA step (base frozen) and a full fine-tuning step.\nExample: tpeft bench train --preset tiny --batch 4 --seq 128")
            { preset, batch, seq, reps, threads, rank, targets, method, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            var options = BenchOptions(p, device, threads);
            string presetName = p.GetValue(preset)!;
            var config = ModelPresets.Get(presetName);
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(reps);
            if (b <= 0 || t < 2 || n <= 0) throw new ArgumentException($"--batch, --seq and --reps must be positive (--seq at least 2), got {b}, {t}, {n}");
            string which = p.GetValue(method)!.Trim().ToLowerInvariant();
            if (which is not ("lora" or "full" or "both")) throw new ArgumentException($"--method: expected lora, full or both, got '{p.GetValue(method)}'");
            var rng = new Random(2);
            var ids = Enumerable.Range(0, b * t).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var data = TokenBatch.FromIds(b, t, ids);
            var rows = new List<(string What, double[] Times, long Trainable)>();
            if (which is "lora" or "both")
            {
                var lora = new LoraConfig { R = p.GetValue(rank), Alpha = 2 * p.GetValue(rank), TargetModules = p.GetValue(targets)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) };
                var adapter = LoraAdapter.Create(config, lora, 1);
                // B starts at zero; the step's arithmetic (GEMM shapes and counts) does not depend on the values.
                using var session = InferenceSession.FromModel(TransformerModel.CreateRandom(config, 1), options);
                using var m = session.CreateTrainingContext(adapter);
                rows.Add(("train-lora", Measure(() => m.Step(data), n), m.TrainableParameterCount));
            }
            if (which is "full" or "both")
            {
                using var session = InferenceSession.FromModel(TransformerModel.CreateRandom(config, 1), options);
                using var m = session.CreateTrainingContext(null, fullFineTune: true);
                rows.Add(("train-full", Measure(() => m.Step(data), n), m.TrainableParameterCount));
            }
            ReportRows(config, presetName, b, t, rows, p.GetValue(json));
            return 0;
        }));
        return cmd;
    }

    /// <summary>CPU session options of a benchmark: --threads, else TPEFT_THREADS, else every core.</summary>
    private static SessionOptions BenchOptions(ParseResult p, Option<string> device, Option<int> threads)
    {
        var o = DeviceChoice.ForCommand(p, device, cpuOnly: "this command measures the CPU backend");
        if (p.GetValue(threads) > 0) o = o with { Threads = p.GetValue(threads) };
        s_threads = o.Threads > 0 ? o.Threads : Environment.ProcessorCount;
        return o;
    }

    /// <summary>The thread count of the command's session, for the report (one command per process).</summary>
    private static int s_threads = Environment.ProcessorCount;

    private static void ReportRows(ModelConfig config, string preset, int b, int t, List<(string What, double[] Times, long Trainable)> rows, bool json)
    {
        var stats = rows.Select(r =>
        {
            var sorted = r.Times.Order().ToArray();
            double median = sorted[sorted.Length / 2];
            return (r.What, r.Trainable, Median: median, Min: sorted[0], Max: sorted[^1], Tps: b * t / median);
        }).ToList();
        if (json)
        {
            JsonOutput.Write(new JsonObject
            {
                ["benchmark"] = "train", ["preset"] = preset, ["parameters"] = config.ParameterCount(), ["batch"] = b, ["seq"] = t,
                ["threads"] = s_threads, ["optimizer"] = "adamw", ["device"] = "cpu",
                ["results"] = new JsonArray(stats.Select(s => (JsonNode)new JsonObject
                {
                    ["benchmark"] = s.What, ["trainable_parameters"] = s.Trainable, ["median_s"] = s.Median, ["min_s"] = s.Min, ["max_s"] = s.Max, ["tokens_per_s"] = s.Tps,
                }).ToArray()),
                ["machine"] = Environment.MachineName, ["cores"] = Environment.ProcessorCount, ["date_utc"] = DateTime.UtcNow.ToString("u"),
            });
            return;
        }
        var table = new Table().AddColumns("benchmark", "trainable", "batch x seq", "median s", "min..max s", "tokens/s")
            .Title($"{preset}: {config.ParameterCount():N0} parameters, {s_threads} thread(s), AdamW");
        foreach (var s in stats)
            table.AddRow(s.What, $"{s.Trainable:N0}", $"{b} x {t}", $"{s.Median:F3}", $"{s.Min:F3}..{s.Max:F3}", $"[bold]{s.Tps:N0}[/]");
        AnsiConsole.Write(table);
    }

    internal static double[] Measure(Action body, int reps, int warmup = 2)
    {
        for (int i = 0; i < warmup; i++) body();
        var times = new double[reps];
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            times[i] = sw.Elapsed.TotalSeconds;
        }
        return times;
    }

    internal static void Report(string what, ModelConfig config, string preset, int b, int t, double[] times, bool json)
    {
        var sorted = times.Order().ToArray();
        double median = sorted[sorted.Length / 2];
        double tps = b * t / median;
        if (json)
        {
            JsonOutput.Write(new JsonObject
            {
                ["benchmark"] = what, ["preset"] = preset, ["parameters"] = config.ParameterCount(), ["batch"] = b, ["seq"] = t,
                ["threads"] = s_threads, ["median_s"] = median, ["min_s"] = sorted[0], ["max_s"] = sorted[^1], ["tokens_per_s"] = tps,
                ["machine"] = Environment.MachineName, ["cores"] = Environment.ProcessorCount, ["date_utc"] = DateTime.UtcNow.ToString("u"),
            });
            return;
        }
        var table = new Table().AddColumns("benchmark", "preset", "params", "batch x seq", "threads", "median s", "min..max s", "tokens/s");
        table.AddRow(what, preset, $"{config.ParameterCount():N0}", $"{b} x {t}", $"{s_threads}", $"{median:F3}", $"{sorted[0]:F3}..{sorted[^1]:F3}", $"[bold]{tps:N0}[/]");
        AnsiConsole.Write(table);
    }
}
