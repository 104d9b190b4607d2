using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft bench ...`: throughput figures of the engine's own paths (comparisons with libtorch live in tools/TransPeft.Bench).</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var cmd = new Command("bench", "Measure the engine's throughput (prints figures; see docs/BENCHMARKS.md)");
        cmd.Subcommands.Add(Forward());
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
        var json = CommonOptions.Json();
        var cmd = new Command("forward", "Tokens/s of the CPU forward pass (logits + loss) for a named size") { preset, batch, seq, reps, threads, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            if (p.GetValue(threads) > 0) CpuParallel.Threads = p.GetValue(threads);
            var config = ModelPresets.Get(p.GetValue(preset)!);
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(reps);
            var model = TransformerModel.CreateRandom(config, 1);
            var m = CpuTransformer.ForInference(model);
            var rng = new Random(2);
            var ids = Enumerable.Range(0, b * t).Select(_ => rng.Next(config.VocabSize)).ToArray();
            var batchData = Engine.Training.TokenBatch.FromIds(b, t, ids);
            var times = Measure(() => m.Loss(batchData), n);
            Report("forward", config, p.GetValue(preset)!, b, t, times, p.GetValue(json));
            return 0;
        }));
        return cmd;
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
                ["threads"] = CpuParallel.Threads, ["median_s"] = median, ["min_s"] = sorted[0], ["max_s"] = sorted[^1], ["tokens_per_s"] = tps,
                ["machine"] = Environment.MachineName, ["cores"] = Environment.ProcessorCount, ["date_utc"] = DateTime.UtcNow.ToString("u"),
            });
            return;
        }
        var table = new Table().AddColumns("benchmark", "preset", "params", "batch x seq", "threads", "median s", "min..max s", "tokens/s");
        table.AddRow(what, preset, $"{config.ParameterCount():N0}", $"{b} x {t}", $"{CpuParallel.Threads}", $"{median:F3}", $"{sorted[0]:F3}..{sorted[^1]:F3}", $"[bold]{tps:N0}[/]");
        AnsiConsole.Write(table);
    }
}
