using TransPeft.Engine.Compute;
using TransPeft.Experiments.Data.Fetch;

namespace TransPeft.Cli.Experiment.RealPair;

/// <summary>The `tpeft experiment --preset real-pair` entry: options, signals (Ctrl-C/SIGTERM stop between units), the run.</summary>
internal static class RealPairCommand
{
    public static int Run(string? outOpt, int threads, bool restart, string? cache, int? seeds, int? steps, string? tasks, double? lr, int firstSeed = 1, int? maxTokens = null)
    {
        using var threadScope = CpuThreads.Use(threads > 0 ? threads : Commands.DeviceChoice.Threads);
        string outDir = Path.GetFullPath(outOpt ?? Path.Combine("results", "experiment-real-pair"));
        if (restart && Directory.Exists(Path.Combine(outDir, "runs"))) Directory.Delete(Path.Combine(outDir, "runs"), recursive: true);
        var options = new RealPairOptions();
        if (seeds is { } n) options = options with { Seeds = Enumerable.Range(firstSeed, n > 0 ? n : throw new ArgumentException("--seeds: expected a positive integer")).ToArray() };
        if (steps is { } st) options = options with { Steps = st > 0 ? st : throw new ArgumentException("--steps: expected a positive integer") };
        if (lr is { } rate) options = options with { LearningRate = rate > 0 ? rate : throw new ArgumentException("--lr: expected a positive number") };
        if (maxTokens is { } mt) options = options with { MaxTokens = mt >= 8 ? mt : throw new ArgumentException("--max-tokens: expected at least 8") };
        if (tasks is { } t) options = options with { Tasks = t.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) };
        using var cts = new CancellationTokenSource();
        using var signals = new Commands.StopSignals(cts, "stopping; finished units are kept and a rerun continues from them");
        void Log(string line) => Console.Out.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {line}");
        var run = new RealPairExperiment(outDir, options, new DataFetcher(cache, new Progress<string>(Log)), Log);
        try
        {
            run.Run(cts.Token);
            Log($"report: {run.Report}");
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"stopped. Finished units are kept in {outDir}.");
            return 130;
        }
    }
}
