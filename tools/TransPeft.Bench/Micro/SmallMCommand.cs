using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using TransPeft.Engine.Compute.Cpu;

namespace TransPeft.Bench.Micro;

/// <summary>
/// `smallm`: the packed GEMM against the small-M kernel (RowDot) on the linear-layer shapes of decode, prefill and
/// BERT at N = 1..128 rows, alternating the two per repetition; prints the median time of each and the ratio. This is
/// what sets <see cref="CpuKernels.SmallRows"/>.
/// </summary>
public static unsafe class SmallMCommand
{
    public static int Run(int threads, int reps, string? only = null)
    {
        (string Name, int In, int Out)[] shapes =
        [
            ("tiny q/k/v/o", 256, 256), ("tiny gate/up", 256, 688), ("tiny down", 688, 256), ("tiny head", 256, 8192),
            ("small gate/up", 512, 1376), ("small down", 1376, 512), ("small head", 512, 8192),
            ("MiniLM ffn up", 384, 1536), ("MiniLM ffn down", 1536, 384),
            ("LoRA r16 shrink", 256, 16), ("LoRA r16 expand", 16, 688),
        ];
        int[] rows = [1, 2, 4, 8, 16, 32, 64, 128];
        Console.WriteLine($"# smallm: {threads} thread(s), {reps} repetitions each, median microseconds; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        Console.WriteLine("| shape (in x out) | N | packed GEMM us | RowDot us | GEMM / RowDot |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (name, inDim, outDim) in shapes)
        {
            if (only is not null && !name.Contains(only, StringComparison.OrdinalIgnoreCase)) continue;
            float* w = GemmBenchmarks.Alloc((long)inDim * outDim), x = GemmBenchmarks.Alloc((long)rows[^1] * inDim), y = GemmBenchmarks.Alloc((long)rows[^1] * outDim);
            foreach (int n in rows)
            {
                var gemm = new List<double>();
                var rowDot = new List<double>();
                CpuKernels.WithThreads(threads, () =>
                {
                    for (int r = 0; r < reps + 2; r++)
                    {
                        double g = Time(() => CpuKernels.PackedMatmulNT(y, x, w, n, inDim, outDim, false, 1f));
                        double d = Time(() => CpuKernels.RowDotNT(y, x, w, n, inDim, outDim, false, 1f));
                        if (r >= 2) { gemm.Add(g); rowDot.Add(d); }
                    }
                });
                double mg = Median(gemm), md = Median(rowDot);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} ({inDim} x {outDim}) | {n} | {mg:0.0} | {md:0.0} | {mg / md:0.00} |"));
            }
            NativeMemory.AlignedFree(w); NativeMemory.AlignedFree(x); NativeMemory.AlignedFree(y);
        }
        return 0;
    }

    private static double Time(Action a)
    {
        long t0 = Stopwatch.GetTimestamp();
        a();
        return Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
    }

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs[xs.Count / 2];
    }

}
