using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TransPeft.Bench.Micro;

/// <summary>
/// The machine's measured fp32 FMA peak: each thread runs a register-only loop of independent fused
/// multiply-adds (12 accumulators, enough to cover FMA latency x ports), all threads at once; best of
/// several tries. Vector256 and, where the CPU has AVX-512, Vector512 (Zen 4 splits a 512-bit FMA into two
/// 256-bit halves, so both should give the same FLOP/s there).
/// </summary>
internal static class PeakFlops
{
    private const long Iterations = 20_000_000;

    public static (double Gflops256, double Gflops512) Measure(int threads, int tries = 5)
    {
        double best256 = 0, best512 = 0;
        for (int t = 0; t < tries; t++)
        {
            best256 = Math.Max(best256, RunAll(threads, Loop256, 12 * 8 * 2));
            if (Avx512F.IsSupported) best512 = Math.Max(best512, RunAll(threads, Loop512, 12 * 16 * 2));
        }
        return (best256, best512);
    }

    public static double Peak(int threads)
    {
        var (a, b) = Measure(threads);
        return Math.Max(a, b);
    }

    public static void Print(int threads)
    {
        var (a, b) = Measure(threads);
        var one = Measure(1, 3);
        Console.WriteLine($"fp32 FMA peak, {threads} thread(s): Vector256 {a:F1} GFLOP/s, Vector512 {(Avx512F.IsSupported ? $"{b:F1}" : "n/a")} GFLOP/s");
        Console.WriteLine($"fp32 FMA peak, 1 thread: Vector256 {one.Gflops256:F1} GFLOP/s, Vector512 {(Avx512F.IsSupported ? $"{one.Gflops512:F1}" : "n/a")} GFLOP/s");
    }

    private static double RunAll(int threads, Func<long, float> loop, int flopsPerIteration)
    {
        var start = new Barrier(threads + 1);
        var workers = Enumerable.Range(0, threads).Select(_ => new Thread(() => { start.SignalAndWait(); loop(Iterations); })).ToList();
        workers.ForEach(w => w.Start());
        start.SignalAndWait();
        var sw = Stopwatch.StartNew();
        workers.ForEach(w => w.Join());
        return (double)Iterations * flopsPerIteration * threads / sw.Elapsed.TotalSeconds / 1e9;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop256(long n)
    {
        var m = Vector256.Create(0.999999f); var a = Vector256.Create(1e-7f);
        Vector256<float> c0 = Vector256.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
                         c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < n; i++)
        {
            c0 = Fma.MultiplyAdd(c0, m, a); c1 = Fma.MultiplyAdd(c1, m, a); c2 = Fma.MultiplyAdd(c2, m, a);
            c3 = Fma.MultiplyAdd(c3, m, a); c4 = Fma.MultiplyAdd(c4, m, a); c5 = Fma.MultiplyAdd(c5, m, a);
            c6 = Fma.MultiplyAdd(c6, m, a); c7 = Fma.MultiplyAdd(c7, m, a); c8 = Fma.MultiplyAdd(c8, m, a);
            c9 = Fma.MultiplyAdd(c9, m, a); c10 = Fma.MultiplyAdd(c10, m, a); c11 = Fma.MultiplyAdd(c11, m, a);
        }
        return Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Loop512(long n)
    {
        var m = Vector512.Create(0.999999f); var a = Vector512.Create(1e-7f);
        Vector512<float> c0 = Vector512.Create(1f), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0,
                         c6 = c0, c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0;
        for (long i = 0; i < n; i++)
        {
            c0 = Avx512F.FusedMultiplyAdd(c0, m, a); c1 = Avx512F.FusedMultiplyAdd(c1, m, a); c2 = Avx512F.FusedMultiplyAdd(c2, m, a);
            c3 = Avx512F.FusedMultiplyAdd(c3, m, a); c4 = Avx512F.FusedMultiplyAdd(c4, m, a); c5 = Avx512F.FusedMultiplyAdd(c5, m, a);
            c6 = Avx512F.FusedMultiplyAdd(c6, m, a); c7 = Avx512F.FusedMultiplyAdd(c7, m, a); c8 = Avx512F.FusedMultiplyAdd(c8, m, a);
            c9 = Avx512F.FusedMultiplyAdd(c9, m, a); c10 = Avx512F.FusedMultiplyAdd(c10, m, a); c11 = Avx512F.FusedMultiplyAdd(c11, m, a);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
