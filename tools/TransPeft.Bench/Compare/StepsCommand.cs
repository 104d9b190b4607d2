using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;

namespace TransPeft.Bench.Compare;

/// <summary>`steps`: engine steps only (no libtorch loaded), for running under a profiler such as dotnet-trace.</summary>
internal static class StepsCommand
{
    public static int Run(BenchSize size, string mode, int threads, int reps)
    {
        CpuParallel.Threads = threads;
        var cfg = size.Config;
        var model = TransformerModel.CreateRandom(cfg, seed: 1234);
        var ids = new int[size.Tokens];
        var rng = new Random(5);
        for (int i = 0; i < ids.Length; i++) ids[i] = rng.Next(cfg.VocabSize);
        var batch = TokenBatch.FromIds(size.Batch, size.SeqLen, ids);
        float scale = 1f / batch.CountedTargets();
        var ctx = new StepContext(default, null, Training: true);
        CpuTransformer m = mode switch
        {
            "forward" => new CpuTransformer(model),
            "lora" => new CpuTransformer(model, LoraAdapter.Create(cfg, new LoraConfig { R = 8, Alpha = 16, TargetModules = ["all-linear"] }, 1)),
            "full" => new CpuTransformer(model, null, fullFineTune: true),
            _ => throw new ArgumentException($"--mode expects forward, lora or full, got '{mode}'"),
        };
        var opt = mode == "forward" ? null : new EngineAdamW(m.TrainableParameters, 1e-4f);
        for (int i = 0; i < reps; i++)
        {
            var (wall, cpu) = CompareCommand.Time(() =>
            {
                if (opt is null) { m.Loss(batch); return; }
                m.ZeroGrad();
                m.ForwardBackward(batch, scale, ctx);
                opt.Step();
            });
            Console.WriteLine($"{size.Name} {mode} step {i}: {wall * 1000:F0} ms wall, {cpu * 1000:F0} ms CPU, {size.Tokens / wall:F0} tok/s");
        }
        return 0;
    }
}
