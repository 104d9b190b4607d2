using System.Globalization;
using System.Text.Json;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.KernelEmulation;

namespace TransPeft.ServeBench;

/// <summary>
/// `TransPeft.ServeBench [--device cuda|cuda:N|cpu|cuda-emulated] [--shape micro|tiny|small|0.5b] [--threads N]
/// [--prompt N] [--new-tokens N] [--runs N] [--requests N] [--adapters 1,8,32] [--adapter-precision auto|float32|bfloat16]
/// [--json FILE] [--work DIR]`:
/// a random model of the preset (init std 0.05), then (1) batch 1: time to first token and per-token p50/p99 over
/// <c>runs</c> greedy requests through <see cref="InferenceContext"/>; (2) adapter load: r=16 all-linear adapters loaded
/// from their folders and hot-swapped in place, plus the first token on an adapter just loaded (on CUDA: its
/// device-side setup) against one already used; (3) throughput of <c>requests</c> concurrent requests on 1, 8 and 32
/// distinct adapters through <see cref="BatchedGenerator"/>, as a ratio to 1 adapter, where the device runs mixed-adapter
/// batches (otherwise the reason is reported). Prints tables, then one `summary:` line (tools/gpu-check.sh's cell).
/// Exit 0 when every part that the device supports ran, 1 on an error, 2 on bad usage.
/// </summary>
public static class ServeBenchCommand
{
    public sealed record Options
    {
        public string Device { get; init; } = "cuda";
        public string Shape { get; init; } = "small";
        public int Threads { get; init; }
        public int Prompt { get; init; } = 32;
        public int NewTokens { get; init; } = 32;
        public int Runs { get; init; } = 8;
        public int Requests { get; init; } = 32;
        public int[] Adapters { get; init; } = [1, 8, 32];
        /// <summary>SessionOptions.AdapterPrecision of the session every part runs on.</summary>
        public AdapterPrecision AdapterPrecision { get; init; } = AdapterPrecision.Auto;
        public string? Json { get; init; }
        public string Work { get; init; } = Path.Combine(Path.GetTempPath(), "tpeft-servebench");
    }

    public static int Execute(string[] args)
    {
        Options o;
        try { o = Parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"TransPeft.ServeBench: {e.Message}");
            return 2;
        }
        try { return Run(o, Console.Out); }
        catch (Exception e) when (e is InvalidOperationException or DeviceUnavailableException or IOException)
        {
            Console.Error.WriteLine($"TransPeft.ServeBench: {e.Message}");
            Console.Out.WriteLine($"summary: failed: {e.Message}");
            return 1;
        }
    }

    private static AdapterPrecision ParsePrecision(string v) =>
        Enum.TryParse<AdapterPrecision>(v, ignoreCase: true, out var p) && Enum.IsDefined(p) && !int.TryParse(v, out _) ? p
        : throw new ArgumentException($"--adapter-precision: expected auto, float32 or bfloat16, got '{v}'");

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string flag = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{flag}: expected a value");
            int Positive() => int.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0 ? n
                : throw new ArgumentException($"{flag}: expected a positive integer, got '{args[i]}'");
            o = flag switch
            {
                "--device" => o with { Device = Value() },
                "--shape" => o with { Shape = Value() },
                "--threads" => o with { Threads = Positive() },
                "--prompt" => o with { Prompt = Positive() },
                "--new-tokens" => o with { NewTokens = Positive() },
                "--runs" => o with { Runs = Positive() },
                "--requests" => o with { Requests = Positive() },
                "--adapters" => o with { Adapters = ParseList(flag, Value()) },
                "--json" => o with { Json = Value() },
                "--work" => o with { Work = Value() },
                "--adapter-precision" => o with { AdapterPrecision = ParsePrecision(Value()) },
                _ => throw new ArgumentException($"unknown argument '{flag}' (expected --device, --shape, --threads, --prompt, --new-tokens, --runs, --requests, --adapters, --adapter-precision, --json, --work)"),
            };
        }
        ModelPresets.Get(o.Shape); // names the known presets when wrong
        try { DeviceSpec.Parse(o.Device); }
        catch (ArgumentException) { throw new ArgumentException($"--device: expected {DeviceSpec.Expected}, got '{o.Device}'"); }
        if (o.NewTokens < 2) throw new ArgumentException("--new-tokens: at least 2 (per-token latency needs one interval)");
        if (o.Adapters[0] != 1) throw new ArgumentException("--adapters: the first count must be 1 (the ratios are to one adapter)");
        return o;
    }

    private static int[] ParseList(string flag, string v)
    {
        var parts = v.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var r = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out r[i]) || r[i] <= 0)
                throw new ArgumentException($"{flag}: expected positive integers separated by commas, got '{v}'");
        return r.Length > 0 ? r : throw new ArgumentException($"{flag}: expected at least one count");
    }

    public static int Run(Options o, TextWriter output)
    {
        var config = ModelPresets.Get(o.Shape);
        var model = TransformerModel.CreateRandom(config, seed: 1, initStd: 0.05);
        var options = new SessionOptions { Device = o.Device, Threads = o.Threads, AdapterPrecision = o.AdapterPrecision, MaxSequenceLength = o.Prompt + o.NewTokens + 8, EmulatorLibrary = EmulatorLibrary(o.Device) };
        using var session = InferenceSession.FromModel(model, options);
        string device = session.DeviceDescription;
        output.WriteLine($"# TransPeft.ServeBench: {o.Shape} ({model.ParameterCount / 1e6:0.0}M parameters), device {session.CudaDescription ?? device}, threads {(o.Threads > 0 ? o.Threads : Environment.ProcessorCount)}, adapters {o.AdapterPrecision}, " +
                         $"{DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, load {LoadAverage()}");
        int[] prompt = [.. Enumerable.Range(0, o.Prompt).Select(i => (i * 37 + 5) % config.VocabSize)];
        var greedy = new GenerationOptions { Greedy = true, MaxNewTokens = o.NewTokens, EosTokenIds = [] };
        var result = new Dictionary<string, object?>
        {
            ["shape"] = o.Shape, ["device"] = device, ["adapter_precision"] = o.AdapterPrecision.ToString(), ["device_description"] = session.CudaDescription, ["parameters"] = model.ParameterCount,
            ["date_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture), ["load_average"] = LoadAverage(),
        };

        // 1. Batch 1.
        using var context = session.CreateContext();
        EngineBench.ContextOnce(context, prompt, greedy); // warm-up (JIT, kernel compilation, device buffers)
        var ttft = new List<double>();
        var per = new List<double>();
        for (int i = 0; i < o.Runs; i++)
        {
            var (t, d) = EngineBench.ContextOnce(context, prompt, greedy);
            ttft.Add(t * 1e3);
            per.AddRange(d.Select(x => x * 1e3));
        }
        double ttft50 = EngineBench.Pct(ttft, 0.5), p50 = EngineBench.Pct(per, 0.5), p99 = EngineBench.Pct(per, 0.99);
        output.WriteLine();
        output.WriteLine("| shape | device | TTFT p50 ms (prompt " + o.Prompt + ") | per-token p50 ms | per-token p99 ms | tokens/s at p50 |");
        output.WriteLine("|---|---|---|---|---|---|");
        output.WriteLine(Inv($"| {o.Shape} | {device} | {ttft50:0.00} | {p50:0.000} | {p99:0.000} | {1e3 / p50:0} |"));
        result["batch1"] = new Dictionary<string, object> { ["prompt"] = o.Prompt, ["new_tokens"] = o.NewTokens, ["runs"] = o.Runs, ["ttft_p50_ms"] = ttft50, ["per_token_p50_ms"] = p50, ["per_token_p99_ms"] = p99 };

        // The batched generator exists before any adapter is loaded, as in `tpeft serve`: on the CPU each load then
        // includes building the adapter's image for batched steps (on CUDA the device upload is included anyway).
        BatchedGenerator? generator = null;
        string? generatorUnavailable = null;
        try { generator = new BatchedGenerator(session, new BatcherOptions { MaxBatchRequests = o.Requests, MaxBatchTokens = o.Requests * (o.Prompt + 1) }); }
        catch (NotSupportedException e) { generatorUnavailable = e.Message; }

        // 2. Adapter load, and the first token on an adapter just loaded against one already used.
        int maxDistinct = o.Adapters.Max();
        Directory.CreateDirectory(o.Work);
        var dirs = EngineBench.SaveAdapters(config, Path.Combine(o.Work, o.Shape), Math.Max(2, maxDistinct));
        var (loads, swaps) = EngineBench.AdapterLoads(session.Adapters, dirs);
        var first = greedy with { MaxNewTokens = 2 };
        var cold = new List<double>();
        var warm = new List<double>();
        for (int i = 1; i < Math.Min(4, dirs.Count); i++)
        {
            context.UseAdapter($"a{i}");
            cold.Add(EngineBench.ContextOnce(context, prompt, first).Ttft * 1e3);
            warm.Add(EngineBench.ContextOnce(context, prompt, first).Ttft * 1e3);
        }
        context.UseAdapter(null);
        long adapterParams = session.Adapters["a0"].ParameterCount;
        double load50 = EngineBench.Pct(loads, 0.5), swap50 = EngineBench.Pct(swaps, 0.5);
        output.WriteLine();
        output.WriteLine(Inv($"adapter load ({o.Shape}, r=16 all-linear, {adapterParams / 1e6:0.00}M parameters): p50 {load50:0.0} ms, max {loads.Max():0.0} ms over {loads.Count} loads; ") +
                         Inv($"hot swap in place p50 {swap50:0.0} ms; first token on a just-loaded adapter p50 {EngineBench.Pct(cold, 0.5):0.0} ms vs {EngineBench.Pct(warm, 0.5):0.0} ms once used"));
        result["adapter_load"] = new Dictionary<string, object>
        {
            ["rank"] = 16, ["parameters"] = adapterParams, ["load_p50_ms"] = load50, ["load_max_ms"] = loads.Max(), ["hot_swap_p50_ms"] = swap50,
            ["first_token_cold_p50_ms"] = EngineBench.Pct(cold, 0.5), ["first_token_warm_p50_ms"] = EngineBench.Pct(warm, 0.5),
        };

        // 3. Mixed-adapter throughput.
        string ratioSummary = "";
        if (generatorUnavailable is not null)
        {
            output.WriteLine();
            output.WriteLine($"mixed-adapter throughput: not available on {device}: {generatorUnavailable}");
            result["throughput"] = new Dictionary<string, object> { ["unavailable"] = generatorUnavailable };
            ratioSummary = "mixed-adapter batches unavailable on this device";
        }
        if (generator is not null)
        {
            var best = EngineBench.ThroughputTable(generator, prompt, greedy, o.Requests, o.Adapters);
            output.WriteLine();
            output.WriteLine($"| shape | device | distinct adapters in a batch of {o.Requests} | decode tokens/s (best of 3, interleaved) | ratio to 1 adapter |");
            output.WriteLine("|---|---|---|---|---|");
            var rows = new List<Dictionary<string, object>>();
            for (int i = 0; i < o.Adapters.Length; i++)
            {
                output.WriteLine(Inv($"| {o.Shape} | {device} | {o.Adapters[i]} | {best[i]:0} | {best[i] / best[0]:0.00} |"));
                rows.Add(new() { ["distinct"] = o.Adapters[i], ["tokens_per_s"] = best[i], ["ratio"] = best[i] / best[0] });
            }
            double last = best[^1] / best[0];
            result["throughput"] = rows;
            ratioSummary = Inv($"{o.Adapters[^1]} adapters at {last:0.00}x of 1");
        }

        if (o.Json is { } json)
        {
            string tmp = json + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
            File.Move(tmp, json, overwrite: true);
        }
        output.WriteLine();
        output.WriteLine(Inv($"summary: {o.Shape} on {device}: TTFT {ttft50:0.0} ms, {p50:0.00} ms/token p50 ({p99:0.00} p99), adapter load {load50:0.0} ms; {ratioSummary}"));
        return 0;
    }

    /// <summary>For cuda-emulated: the real kernels compiled for the host (cached by source hash), else null.</summary>
    private static string? EmulatorLibrary(string device)
    {
        if (!device.Trim().Equals("cuda-emulated", StringComparison.OrdinalIgnoreCase)) return null;
        return HostKernelLibrary.TryBuild(null, out var library, out var why) ? library : throw new InvalidOperationException($"--device cuda-emulated: {why}");
    }

    private static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
