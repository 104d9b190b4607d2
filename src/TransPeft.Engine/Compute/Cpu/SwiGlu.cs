using System.Numerics;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// SwiGLU activation with Trans-PEFT knowledge masking: a = silu(g) · u · m, silu(z) = z·σ(z), m ∈ {0,1}
/// (no rescaling). The backward recomputes silu from the saved pre-activations g and u:
///   dg = da·m·u·σ(g)·(1 + g·(1 − σ(g))),   du = da·m·silu(g).
/// </summary>
internal static class SwiGlu
{
    /// <summary>a[N*I] from gate[N*I], up[N*I]; mask (0/1, same size) or null.</summary>
    public static void Forward<T>(T[] a, T[] gate, T[] up, T[]? mask, int count) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int chunk = 16384;
        CpuParallel.For((count + chunk - 1) / chunk, ci =>
        {
            int end = Math.Min(count, (ci + 1) * chunk);
            for (int i = ci * chunk; i < end; i++)
            {
                T g = gate[i];
                T s = T.One / (T.One + T.Exp(-g));
                T v = g * s * up[i];
                a[i] = mask is null ? v : v * mask[i];
            }
        });
    }

    /// <summary>dgate = ∂/∂g, dup = ∂/∂u of Σ da·a (written, not accumulated).</summary>
    public static void Backward<T>(T[] dgate, T[] dup, T[] da, T[] gate, T[] up, T[]? mask, int count) where T : unmanaged, IFloatingPointIeee754<T>
    {
        const int chunk = 16384;
        CpuParallel.For((count + chunk - 1) / chunk, ci =>
        {
            int end = Math.Min(count, (ci + 1) * chunk);
            for (int i = ci * chunk; i < end; i++)
            {
                T g = gate[i];
                T s = T.One / (T.One + T.Exp(-g));
                T d = mask is null ? da[i] : da[i] * mask[i];
                dup[i] = d * g * s;
                dgate[i] = d * up[i] * s * (T.One + g * (T.One - s));
            }
        });
    }
}
