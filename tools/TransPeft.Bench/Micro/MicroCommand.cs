using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace TransPeft.Bench.Micro;

/// <summary>
/// `micro`: BenchmarkDotNet over the CPU kernels at the shapes of a tiny-model training step, in process
/// (no generated project to build), then a table of achieved GFLOP/s against the measured FMA peak.
/// </summary>
internal static class MicroCommand
{
    private static int _threads = Environment.ProcessorCount;

    /// <summary>Runs a kernel call with the command's thread count (BenchmarkDotNet calls the benchmarks in process).</summary>
    public static void WithThreads(Action kernel) => TransPeft.Engine.Compute.Cpu.CpuKernels.WithThreads(_threads, kernel);

    public static int Run(int threads, string? filter, bool quick, string[] bdnArgs)
    {
        _threads = threads;
        double peak = PeakFlops.Peak(threads);
        Console.WriteLine($"measured fp32 FMA peak with {threads} thread(s): {peak:F1} GFLOP/s");

        var job = Job.Default.WithToolchain(InProcessEmitToolchain.Instance)
            .WithLaunchCount(1).WithWarmupCount(quick ? 1 : 3).WithIterationCount(quick ? 3 : 10);
        var config = ManualConfig.Create(DefaultConfig.Instance).AddJob(job).WithOptions(ConfigOptions.DisableOptimizationsValidator);
        if (filter is not null) bdnArgs = [.. bdnArgs, "--filter", filter];
        var summaries = BenchmarkSwitcher.FromTypes([typeof(GemmBenchmarks), typeof(AttentionBenchmarks), typeof(SwiGluBenchmarks)])
            .Run(bdnArgs.Length > 0 ? bdnArgs : ["--filter", "*"], config);

        Console.WriteLine();
        Console.WriteLine($"| kernel | shape | median | GFLOP/s | of peak ({peak:F0} GFLOP/s, {threads} thr) |");
        Console.WriteLine("|---|---|---:|---:|---:|");
        foreach (var report in summaries.SelectMany(s => s.Reports))
        {
            if (report.ResultStatistics is not { } stats) continue;
            double seconds = stats.Median / 1e9;
            var bc = report.BenchmarkCase;
            string method = bc.Descriptor.WorkloadMethod.Name;
            (string shape, double flops, double bytes) = method switch
            {
                "Gemm" => ((GemmCase)bc.Parameters["Case"]) is var g ? (g.ToString(), g.Flops, 0.0) : default,
                "AttentionForward" => ($"B{AttentionBenchmarks.B} T{AttentionBenchmarks.T} h{AttentionBenchmarks.Heads} d{AttentionBenchmarks.D}", AttentionBenchmarks.ForwardFlops, 0.0),
                "AttentionBackward" => ($"B{AttentionBenchmarks.B} T{AttentionBenchmarks.T} h{AttentionBenchmarks.Heads} d{AttentionBenchmarks.D}", AttentionBenchmarks.BackwardFlops, 0.0),
                "SwiGluForward" => ($"{SwiGluBenchmarks.Count} elements", 0.0, 12.0 * SwiGluBenchmarks.Count),
                "SwiGluBackward" => ($"{SwiGluBenchmarks.Count} elements", 0.0, 20.0 * SwiGluBenchmarks.Count),
                _ => ("?", 0.0, 0.0),
            };
            string rate = flops > 0 ? $"{flops / seconds / 1e9:F1}" : $"{bytes / seconds / 1e9:F1} GB/s";
            string frac = flops > 0 ? $"{flops / seconds / 1e9 / peak:P0}" : "-";
            Console.WriteLine($"| {method} | {shape} | {FormatTime(seconds)} | {rate} | {frac} |");
        }
        return 0;
    }

    private static string FormatTime(double s) => s >= 1e-3 ? $"{s * 1e3:F2} ms" : $"{s * 1e6:F1} us";
}
