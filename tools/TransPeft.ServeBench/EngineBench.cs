using System.Diagnostics;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;

namespace TransPeft.ServeBench;

/// <summary>
/// The engine-side serving measurements, shared by TransPeft.ServeBench (any device) and TransPeft.LlamaBench (the CPU,
/// side by side with llama.cpp), so both report the same quantities measured the same way. Everything goes through the
/// public session API.
/// </summary>
public static class EngineBench
{
    /// <summary>The p-quantile (0..1) of <paramref name="xs"/>, nearest rank.</summary>
    public static double Pct(IEnumerable<double> xs, double p)
    {
        var a = xs.Order().ToArray();
        return a.Length == 0 ? double.NaN : a[(int)Math.Clamp(Math.Ceiling(p * a.Length) - 1, 0, a.Length - 1)];
    }

    /// <summary>Intervals between consecutive time stamps: the per-token latencies after the first token.</summary>
    public static double[] Diffs(double[] stamps) => [.. Enumerable.Range(1, stamps.Length - 1).Select(i => stamps[i] - stamps[i - 1])];

    /// <summary>
    /// One request at batch 1 through <see cref="InferenceContext.GenerateAsync"/> (the single-request path of every
    /// device): seconds from the call to the first token (prefill + first token) and between the following tokens.
    /// </summary>
    public static (double Ttft, double[] PerToken) ContextOnce(InferenceContext context, int[] prompt, GenerationOptions options)
    {
        var stamps = new List<double>();
        var sw = Stopwatch.StartNew();
        var tokens = context.GenerateAsync(prompt, options).GetAsyncEnumerator();
        try
        {
            // The work runs on this thread inside MoveNextAsync, so this is synchronous.
            while (tokens.MoveNextAsync().AsTask().GetAwaiter().GetResult()) stamps.Add(sw.Elapsed.TotalSeconds);
        }
        finally { tokens.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        if (stamps.Count != options.MaxNewTokens) throw new InvalidOperationException($"generated {stamps.Count} tokens, expected {options.MaxNewTokens}");
        return (stamps[0], Diffs([.. stamps]));
    }

    /// <summary>
    /// One request at batch 1 through <see cref="BatchedGenerator"/> stepped on this thread (the serving path of
    /// `tpeft serve`): same quantities as <see cref="ContextOnce"/>.
    /// </summary>
    public static (double Ttft, double[] PerToken) BatcherOnce(BatchedGenerator generator, int[] prompt, GenerationOptions options)
    {
        var stamps = new double[options.MaxNewTokens];
        var sw = Stopwatch.StartNew();
        var r = generator.Submit(prompt, null, options);
        for (int i = 0; generator.Batcher.Step(); i++) if (i < stamps.Length) stamps[i] = sw.Elapsed.TotalSeconds;
        if (!r.Completion.IsCompletedSuccessfully || r.Generated != options.MaxNewTokens) throw new InvalidOperationException("the batched request did not complete");
        return (stamps[0], Diffs(stamps));
    }

    /// <summary>The adapter every figure uses: LoRA r=16, alpha 32, on all seven linear projections.</summary>
    public static readonly LoraConfig Lora = new() { R = 16, Alpha = 32, TargetModules = ["all-linear"] };

    /// <summary>Writes <paramref name="count"/> distinct random adapters of <see cref="Lora"/> under <paramref name="dir"/>; their folders.</summary>
    public static List<string> SaveAdapters(ModelConfig config, string dir, int count)
    {
        var dirs = new List<string>();
        for (int i = 0; i < count; i++)
        {
            var a = LoraAdapter.Create(config, Lora, seed: 100 + i);
            // Non-zero B, so the adapters change the logits (a fresh LoRA adds zero).
            var rng = new Random(100 + i);
            foreach (var (name, values) in a.Tensors())
                if (name.Contains("lora_B", StringComparison.Ordinal))
                    foreach (ref float v in values.Span) v = (float)(rng.NextDouble() - 0.5) * 0.02f;
            string d = Path.Combine(dir, $"adapter{i}");
            a.Save(d);
            dirs.Add(d);
        }
        return dirs;
    }

    /// <summary>
    /// Adapter load time in milliseconds: every folder loaded under a{i} (files in the page cache), then up to 8 same-shape
    /// replacements of a0 (hot swap in place).
    /// </summary>
    public static (List<double> Loads, List<double> Swaps) AdapterLoads(AdapterSet adapters, IReadOnlyList<string> dirs)
    {
        var loads = new List<double>();
        var swaps = new List<double>();
        for (int i = 0; i < dirs.Count; i++) loads.Add(adapters.Load($"a{i}", dirs[i], replace: false).Elapsed.TotalMilliseconds);
        for (int i = 0; i < Math.Min(8, dirs.Count - 1); i++) swaps.Add(adapters.Load("a0", dirs[i + 1], replace: true).Elapsed.TotalMilliseconds);
        return (loads, swaps);
    }

    /// <summary>
    /// The best decode tokens/s of <see cref="Throughput"/> for each count in <paramref name="distinct"/> over
    /// <paramref name="reps"/> rounds, the counts taking turns within each round so that a change in the machine's load
    /// during the run hits every count alike (one warm-up first).
    /// </summary>
    public static double[] ThroughputTable(BatchedGenerator generator, int[] prompt, GenerationOptions options, int requests, int[] distinct, int reps = 3)
    {
        Throughput(generator, prompt, options, requests, 1);
        var best = new double[distinct.Length];
        for (int r = 0; r < reps; r++)
            for (int i = 0; i < distinct.Length; i++)
                best[i] = Math.Max(best[i], Throughput(generator, prompt, options, requests, distinct[i]));
        return best;
    }

    /// <summary>
    /// Decode tokens per second of <paramref name="requests"/> concurrent requests on <paramref name="distinct"/> adapters
    /// (a0 .. a{distinct-1}, round robin), timed after the step that prefills them all.
    /// </summary>
    public static double Throughput(BatchedGenerator generator, int[] prompt, GenerationOptions options, int requests, int distinct)
    {
        var reqs = Enumerable.Range(0, requests).Select(i => generator.Submit(prompt, $"a{i % distinct}", options)).ToList();
        generator.Batcher.Step(); // prefill (and the first token of every request)
        var sw = Stopwatch.StartNew();
        while (generator.Batcher.Step()) { }
        double s = sw.Elapsed.TotalSeconds;
        if (reqs.Any(r => r.Generated != options.MaxNewTokens)) throw new InvalidOperationException("a batched request did not complete");
        return requests * (options.MaxNewTokens - 1) / s;
    }
}
