using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Training;

namespace TransPeft.Bench.Compare;

/// <summary>`steps`: engine steps only (no libtorch loaded), for running under a profiler such as dotnet-trace.</summary>
internal static class StepsCommand
{
    public static int Run(BenchSize size, string mode, int threads, int reps)
    {
        var cfg = size.Config;
        using var session = InferenceSession.FromModel(TransformerModel.CreateRandom(cfg, seed: 1234),
            new SessionOptions { Threads = threads, MaxBatchSize = size.Batch });
        var ids = new int[size.Tokens];
        var rng = new Random(5);
        for (int i = 0; i < ids.Length; i++) ids[i] = rng.Next(cfg.VocabSize);
        var batch = TokenBatch.FromIds(size.Batch, size.SeqLen, ids);
        var step = new TrainingStepOptions { WeightDecay = 0.01, MaxGradNorm = 0 };
        using var eval = session.CreateContext();
        using var train = mode switch
        {
            "forward" => null,
            "lora" => session.CreateTrainingContext(LoraAdapter.Create(cfg, new LoraConfig { R = 8, Alpha = 16, TargetModules = ["all-linear"] }, 1), options: step),
            "full" => session.CreateTrainingContext(null, fullFineTune: true, options: step),
            _ => throw new ArgumentException($"--mode expects forward, lora or full, got '{mode}'"),
        };
        for (int i = 0; i < reps; i++)
        {
            var (wall, cpu) = CompareCommand.Time(() =>
            {
                if (train is null) eval.Loss(batch);
                else train.Step(batch);
            });
            Console.WriteLine($"{size.Name} {mode} step {i}: {wall * 1000:F0} ms wall, {cpu * 1000:F0} ms CPU, {size.Tokens / wall:F0} tok/s");
        }
        return 0;
    }
}
