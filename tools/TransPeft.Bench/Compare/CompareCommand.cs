using System.Diagnostics;
using TorchSharp;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Training;
using static TorchSharp.torch;

namespace TransPeft.Bench.Compare;

/// <summary>
/// `compare`: the engine's CPU backend against libtorch on the same weights, batch and thread count.
/// First a parity check (loss of base and LoRA model, and every gradient of one LoRA and one full step);
/// then forward, LoRA-step and full-step throughput, engine and libtorch runs alternating so that machine
/// load hits both alike.
/// </summary>
internal static class CompareCommand
{
    public const double ParityTolerance = 1e-4;

    public sealed record Options(string[] Sizes, int Threads, int Warmup, int Reps, string WorkDir);

    public sealed record Row(string Size, string Mode, int Tokens, Timing Engine, Timing Torch)
    {
        public double Ratio => Engine.TokensPerSecond(Tokens) / Torch.TokensPerSecond(Tokens);
    }

    public static int Run(Options o)
    {
        torch.set_num_interop_threads(1);
        torch.set_num_threads(o.Threads);
        Console.WriteLine($"threads: engine {o.Threads}, libtorch {torch.get_num_threads()}; warmup {o.Warmup}, reps {o.Reps} (alternating)");
        var rows = new List<Row>();
        foreach (var name in o.Sizes)
        {
            var size = BenchSize.Parse(name);
            rows.AddRange(RunSize(size, o));
        }
        Console.WriteLine();
        PrintTable(rows, o);
        return 0;
    }

    private static IEnumerable<Row> RunSize(BenchSize size, Options o)
    {
        var cfg = size.Config;
        string dir = Path.Combine(o.WorkDir, size.Name);
        string modelDir = Path.Combine(dir, "model"), adapterDir = Path.Combine(dir, "adapter");
        var model = TransformerModel.CreateRandom(cfg, seed: 1234);
        model.Save(modelDir);
        var loraCfg = new LoraConfig { R = 8, Alpha = 16, TargetModules = ["all-linear"] };
        var adapter = LoraAdapter.Create(cfg, loraCfg, seed: 99);
        // B starts at zero in real training; give it values so the parity check exercises the LoRA path.
        var rng = new Random(7);
        foreach (var (name, values) in adapter.Tensors().Where(t => t.Name.Contains(".lora_B.")))
            foreach (ref var x in values.Span) x = (float)((rng.NextDouble() * 2 - 1) * 0.02);
        adapter.Save(adapterDir);
        Console.WriteLine($"\n== {size.Name}: hidden {cfg.HiddenSize}, {cfg.NumLayers} layers, {cfg.NumHeads}/{cfg.NumKvHeads} heads, " +
                          $"intermediate {cfg.IntermediateSize}, vocab {cfg.VocabSize}: {model.ParameterCount / 1e6:F2}M params; " +
                          $"batch {size.Batch} x {size.SeqLen}; LoRA r=8 all 7 ({adapter.ParameterCount} params)");

        var ids = new int[size.Tokens];
        var idRng = new Random(5);
        for (int i = 0; i < ids.Length; i++) ids[i] = idRng.Next(cfg.VocabSize);
        var batch = TokenBatch.FromIds(size.Batch, size.SeqLen, ids);
        using var tIds = torch.tensor(ids.Select(i => (long)i).ToArray(), [size.Batch, size.SeqLen]);

        // The engine through its public session API: one session on the saved weights, the adapter served by name,
        // and training contexts for the steps (LoRA over the shared frozen base; full fine-tuning on a copy).
        using var session = InferenceSession.Load(modelDir, new SessionOptions { Threads = o.Threads, MaxBatchSize = size.Batch });
        var loraAdapter = session.Adapters.Load("lora", adapterDir);
        using var engBase = session.CreateContext();
        using var engLoraEval = session.CreateContext("lora");
        using var tm = new TorchLlama(modelDir, adapterDir, (float)loraCfg.Scaling, size.SeqLen);
        // As torch.optim.AdamW(weight_decay 0.01) in TorchStep: no clipping on either side.
        const double lr = 1e-4;
        var step = new TrainingStepOptions { LearningRate = lr, WeightDecay = 0.01, MaxGradNorm = 0 };
        using var engLora = session.CreateTrainingContext(loraAdapter, options: step);
        using var engFull = session.CreateTrainingContext(null, fullFineTune: true, options: step);

        // ---- parity
        Parity.CheckLoss("base loss", engBase, tm, batch, tIds, useLora: false);
        Parity.CheckLoss("LoRA loss", engLoraEval, tm, batch, tIds, useLora: true);
        Parity.CheckGradients("LoRA grads", engLora, tm, batch, tIds, useLora: true);
        Parity.CheckGradients("full grads", engFull, tm, batch, tIds, useLora: false);

        // ---- timing
        var fwd = Alternate("forward", o,
            () => engBase.Loss(batch),
            () => { using var _ = torch.no_grad(); tm.UseLora = false; using var l = tm.Loss(tIds); l.item<float>(); });
        yield return new Row(size.Name, "forward", size.Tokens, fwd.Engine, fwd.Torch);

        tm.SetTrainable(lora: true);
        var loraOpt = MakeTorchAdamW(tm.LoraParameters, (float)lr);
        var lora = Alternate("LoRA step", o,
            () => engLora.Step(batch),
            () => TorchStep(tm, loraOpt, tIds, useLora: true));
        yield return new Row(size.Name, "LoRA step", size.Tokens, lora.Engine, lora.Torch);

        tm.SetTrainable(lora: false);
        var fullOpt = MakeTorchAdamW(tm.BaseParameters, (float)lr);
        var full = Alternate("full step", o,
            () => engFull.Step(batch),
            () => TorchStep(tm, fullOpt, tIds, useLora: false));
        yield return new Row(size.Name, "full step", size.Tokens, full.Engine, full.Torch);
    }

    private static torch.optim.Optimizer MakeTorchAdamW(IReadOnlyList<TorchSharp.Modules.Parameter> ps, float lr) =>
        torch.optim.AdamW(ps, lr, weight_decay: 0.01);

    private static void TorchStep(TorchLlama tm, torch.optim.Optimizer opt, Tensor ids, bool useLora)
    {
        using var scope = torch.NewDisposeScope();
        opt.zero_grad();
        tm.UseLora = useLora;
        var loss = tm.Loss(ids);
        loss.backward();
        opt.step();
    }

    /// <summary>Warmups, then reps of (engine, libtorch) back to back; each side's wall time per call.</summary>
    private static (Timing Engine, Timing Torch) Alternate(string what, Options o, Action engine, Action libtorch)
    {
        var te = new List<(double, double)>(); var tt = new List<(double, double)>();
        for (int i = 0; i < o.Warmup + o.Reps; i++)
        {
            // Alternate which side goes first so neither always runs right after the other's cache pollution.
            bool engineFirst = i % 2 == 0;
            var a = Time(engineFirst ? engine : libtorch);
            var b = Time(engineFirst ? libtorch : engine);
            if (i < o.Warmup) continue;
            te.Add(engineFirst ? a : b); tt.Add(engineFirst ? b : a);
        }
        var r = (new Timing(te), new Timing(tt));
        Console.WriteLine($"  {what,-10} engine {r.Item1}   libtorch {r.Item2}");
        return r;
    }

    /// <summary>(wall seconds, CPU seconds of the whole process) of one call.</summary>
    internal static (double Wall, double Cpu) Time(Action f)
    {
        var proc = Process.GetCurrentProcess();
        var cpu0 = proc.TotalProcessorTime;
        var sw = Stopwatch.StartNew();
        f();
        double wall = sw.Elapsed.TotalSeconds;
        proc.Refresh();
        return (wall, (proc.TotalProcessorTime - cpu0).TotalSeconds);
    }

    private static void PrintTable(List<Row> rows, Options o)
    {
        Console.WriteLine($"tokens/s of wall time, median of {o.Reps} alternating reps (min..max in brackets), {o.Threads} thread(s) each;");
        Console.WriteLine("tokens per CPU-second of the process (all threads, spin-waits included): robust to other load when threads = 1");
        Console.WriteLine("| size | mode | tokens/step | engine tok/s | libtorch tok/s | engine/libtorch | engine tok/CPU-s | libtorch tok/CPU-s | engine/libtorch (CPU) |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
            Console.WriteLine($"| {r.Size} | {r.Mode} | {r.Tokens} | {r.Engine.Format(r.Tokens)} | {r.Torch.Format(r.Tokens)} | **{r.Ratio:F2}x** | " +
                              $"{r.Tokens / r.Engine.CpuMedian:F0} | {r.Tokens / r.Torch.CpuMedian:F0} | {r.Torch.CpuMedian / r.Engine.CpuMedian:F2}x |");
    }
}

/// <summary>Seconds per call (wall, and CPU of the process) over the measured repetitions.</summary>
internal sealed class Timing(List<(double Wall, double Cpu)> samples)
{
    public double Median { get; } = Percentile(samples.Select(s => s.Wall).ToList(), 0.5);
    public double Min { get; } = samples.Min(s => s.Wall);
    public double Max { get; } = samples.Max(s => s.Wall);
    public double CpuMedian { get; } = Percentile(samples.Select(s => s.Cpu).ToList(), 0.5);

    private static double Percentile(List<double> xs, double q)
    {
        var s = xs.OrderBy(x => x).ToArray();
        double pos = q * (s.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return s[lo] + (s[hi] - s[lo]) * (pos - lo);
    }

    public double TokensPerSecond(int tokens) => tokens / Median;

    public string Format(int tokens) => $"{tokens / Median:F0} [{tokens / Max:F0}..{tokens / Min:F0}]";

    public override string ToString() => $"median {Median * 1000:F1} ms (min {Min * 1000:F1}, max {Max * 1000:F1}; CPU {CpuMedian * 1000:F1} ms)";
}
