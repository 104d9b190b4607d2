using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using TransPeft.Engine.Compute.Cpu; // CpuKernels: the engine's public kernel-profiling surface

namespace TransPeft.Bench.Micro;

/// <summary>One GEMM of a training step of the "tiny" model (N = 16 x 256 tokens, C 256, I 688, V 8192).</summary>
public sealed record GemmCase(string Name, string Layout, int N, int In, int Out)
{
    public double Flops => 2.0 * N * In * Out;
    public override string ToString() => $"{Name} {Layout} {N}x{In}x{Out}";

    public static IEnumerable<GemmCase> TrainingStep() =>
    [
        new("qkvo fwd", "NT", 4096, 256, 256),
        new("gate/up fwd", "NT", 4096, 256, 688),
        new("down fwd", "NT", 4096, 688, 256),
        new("head chunk fwd", "NT", 128, 256, 8192),
        new("down dx", "NN", 4096, 688, 256),
        new("gate/up dx", "NN", 4096, 256, 688),
        new("head chunk dx", "NN", 128, 256, 8192),
        new("gate/up dW", "TN", 4096, 256, 688),
        new("down dW", "TN", 4096, 688, 256),
        new("head chunk dW", "TN", 128, 256, 8192),
        new("lora x.At", "NT", 4096, 256, 8),
        new("lora t.Bt", "NT", 4096, 8, 688),
        new("lora dt=dy.B", "NN", 4096, 8, 688),
        new("lora dx+=dt.A", "NN", 4096, 256, 8),
        new("lora dB+=dyT.t", "TN", 4096, 8, 688),
        new("lora dA+=dtT.x", "TN", 4096, 256, 8),
    ];
}

/// <summary>Gemm.MatmulNT / NN / TN: y[N,Out] = x[N,In]·Wᵀ; dx[N,In] = dy[N,Out]·W; dW[Out,In] = dyᵀ·x.</summary>
public unsafe class GemmBenchmarks
{
    [ParamsSource(nameof(Cases))] public GemmCase Case { get; set; } = null!;
    public static IEnumerable<GemmCase> Cases => GemmCase.TrainingStep();

    private float* _x, _w, _y;

    [GlobalSetup]
    public void Setup()
    {
        long nx = (long)Case.N * Case.In, nw = (long)Case.Out * Case.In, ny = (long)Case.N * Case.Out;
        _x = Alloc(nx); _w = Alloc(nw); _y = Alloc(ny);
    }

    /// <summary>n floats, 64-byte aligned, filled from seed 1 in [-0.5, 0.5) (the micro-benchmarks' inputs).</summary>
    internal static float* Alloc(long n)
    {
        var p = (float*)NativeMemory.AlignedAlloc((nuint)(n * sizeof(float)), 64);
        var rng = new Random(1);
        for (long i = 0; i < n; i++) p[i] = (float)(rng.NextDouble() - 0.5);
        return p;
    }

    [Benchmark]
    public void Gemm() => MicroCommand.WithThreads(RunGemm);

    private void RunGemm()
    {
        var c = Case;
        switch (c.Layout)
        {
            case "NT": CpuKernels.MatmulNT(_y, _x, _w, c.N, c.In, c.Out, false, 1f); break;
            // dx[N,In] = dy[N,Out]·W[Out,In]: _y plays dy, _x receives dx.
            case "NN": CpuKernels.MatmulNN(_x, _y, _w, c.N, c.Out, c.In, false, 1f); break;
            // dW[Out,In] += dy[N,Out]ᵀ·x[N,In]: accumulate as the training step does.
            default: CpuKernels.MatmulTN(_w, _y, _x, c.N, c.Out, c.In, true, 1f); break;
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_x); NativeMemory.AlignedFree(_w); NativeMemory.AlignedFree(_y);
    }
}

/// <summary>Causal attention of the tiny model (B 16, T 256, 8 heads of 32) forward and backward; SwiGLU forward over [N, I].</summary>
public class AttentionBenchmarks
{
    public const int B = 16, T = 256, Heads = 8, KvHeads = 8, D = 32;
    /// <summary>Causal: QKᵀ and PV over the lower triangle, 2·(T²/2)·D multiply-adds each per head.</summary>
    public const double ForwardFlops = 2.0 * 2 * B * Heads * (T * (T + 1) / 2.0) * D;
    /// <summary>Backward: recompute QKᵀ, dP = dO·Vᵀ, dV = Pᵀ·dO, dQ = dS·K, dK = dSᵀ·Q (5 products).</summary>
    public const double BackwardFlops = 5.0 * 2 * B * Heads * (T * (T + 1) / 2.0) * D;

    private float[] _q = null!, _k = null!, _v = null!, _o = null!, _lse = null!, _do = null!, _dq = null!, _dk = null!, _dv = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(2);
        float[] R(int n) { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() - 0.5); return a; }
        int nq = B * T * Heads * D, nkv = B * T * KvHeads * D;
        _q = R(nq); _k = R(nkv); _v = R(nkv); _do = R(nq);
        _o = new float[nq]; _lse = new float[B * Heads * T];
        _dq = new float[nq]; _dk = new float[nkv]; _dv = new float[nkv];
        CpuKernels.AttentionForward(_o, _lse, _q, _k, _v, B, T, Heads, KvHeads, D);
    }

    [Benchmark] public void AttentionForward() => MicroCommand.WithThreads(() => CpuKernels.AttentionForward(_o, _lse, _q, _k, _v, B, T, Heads, KvHeads, D));

    [Benchmark] public void AttentionBackward() => MicroCommand.WithThreads(() => CpuKernels.AttentionBackward(_dq, _dk, _dv, _do, _q, _k, _v, _o, _lse, B, T, Heads, KvHeads, D));
}

public class SwiGluBenchmarks
{
    public const int Count = 4096 * 688;
    private float[] _g = null!, _u = null!, _a = null!, _da = null!, _dg = null!, _du = null!;

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(3);
        float[] R() { var a = new float[Count]; for (int i = 0; i < Count; i++) a[i] = (float)(rng.NextDouble() * 4 - 2); return a; }
        _g = R(); _u = R(); _da = R(); _a = new float[Count]; _dg = new float[Count]; _du = new float[Count];
    }

    /// <summary>Reads g, u; writes a: 12 bytes per element.</summary>
    [Benchmark] public void SwiGluForward() => MicroCommand.WithThreads(() => CpuKernels.SwiGluForward(_a, _g, _u, null, Count));

    /// <summary>Reads da, g, u; writes dg, du: 20 bytes per element.</summary>
    [Benchmark] public void SwiGluBackward() => MicroCommand.WithThreads(() => CpuKernels.SwiGluBackward(_dg, _du, _da, _g, _u, null, Count));
}
