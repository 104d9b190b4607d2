using TransPeft.Bench.Compare;
using TransPeft.Bench.Micro;

// TransPeft.Bench: `compare` (engine vs libtorch, side by side) and `micro` (kernel GFLOP/s vs measured peak).
// Not part of the product: the engine never references TorchSharp.
static int Usage()
{
    Console.Error.WriteLine("""
        usage: TransPeft.Bench compare [--sizes tiny,mini,small] [--threads N] [--reps N] [--warmup N] [--work DIR]
               TransPeft.Bench micro   [--threads N] [--filter PATTERN] [--quick] [-- BenchmarkDotNet args]
               TransPeft.Bench peak    [--threads N]
               TransPeft.Bench smallm  [--threads N] [--reps N] [--filter NAME]   (packed GEMM vs the small-M kernel, N = 1..128 rows)
               TransPeft.Bench embed   [--threads N] [--reps N] [--work DIR]   (BERT embedding latency vs ONNX Runtime)
               TransPeft.Bench steps   [--sizes tiny] [--mode forward|lora|full] [--threads N] [--reps N]   (engine only, for profilers)
        """);
    return 2;
}

if (args.Length == 0) return Usage();
string cmd = args[0];
var opts = new Dictionary<string, string>(StringComparer.Ordinal);
var rest = new List<string>();
for (int i = 1; i < args.Length; i++)
{
    if (args[i] == "--") { rest.AddRange(args[(i + 1)..]); break; }
    if (args[i] == "--quick") { opts["quick"] = "1"; continue; }
    if (args[i].StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length) { opts[args[i][2..]] = args[++i]; continue; }
    Console.Error.WriteLine($"unexpected argument '{args[i]}'");
    return Usage();
}
int Int(string key, int def)
{
    if (!opts.TryGetValue(key, out var v)) return def;
    return int.TryParse(v, out int n) && n > 0 ? n : throw new ArgumentException($"--{key} expects a positive integer, got '{v}'");
}
int threads = Int("threads", Environment.ProcessorCount);

switch (cmd)
{
    case "compare":
        var sizes = (opts.GetValueOrDefault("sizes") ?? "tiny,mini").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        foreach (var s in sizes) BenchSize.Parse(s);
        string work = opts.GetValueOrDefault("work") ?? Path.Combine(Path.GetTempPath(), "tpeft-bench");
        return CompareCommand.Run(new CompareCommand.Options(sizes, threads, Int("warmup", 3), Int("reps", 10), work));
    case "micro":
        return MicroCommand.Run(threads, opts.GetValueOrDefault("filter"), opts.ContainsKey("quick"), rest.ToArray());
    case "steps":
        return StepsCommand.Run(BenchSize.Parse(opts.GetValueOrDefault("sizes") ?? "tiny"), opts.GetValueOrDefault("mode") ?? "lora", threads, Int("reps", 10));
    case "embed":
        return EmbedLatency.Run(threads, Int("reps", 100), opts.GetValueOrDefault("work") ?? Path.Combine(Path.GetTempPath(), "tpeft-bench-embed"));
    case "smallm":
        return SmallMCommand.Run(threads, Int("reps", 30), opts.GetValueOrDefault("filter"));
    case "peak":
        PeakFlops.Print(threads);
        return 0;
    default:
        return Usage();
}
