using System.Numerics;
using System.Numerics.Tensors;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// SwiGLU activation with Trans-PEFT knowledge masking: a = silu(g) · u · m, silu(z) = z·σ(z), m ∈ {0,1}
/// (no rescaling). The backward recomputes silu from the saved pre-activations g and u:
///   dg = da·m·u·σ(g)·(1 + g·(1 − σ(g))),   du = da·m·silu(g).
/// Vectorised with TensorPrimitives over L1-sized pieces (σ computed once per piece into a stack buffer).
/// </summary>
internal static class SwiGlu
{
    private const int Chunk = 16384, Piece = 512;

    /// <summary>a[N*I] from gate[N*I], up[N*I]; mask (0/1, same size) or null.</summary>
    public static void Forward<T>(T[] a, T[] gate, T[] up, T[]? mask, int count) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int chunks = (count + Chunk - 1) / Chunk;
        if (!CpuParallel.Splits(chunks, count > Chunk))
        {
            for (int ci = 0; ci < chunks; ci++) ForwardChunk(a, gate, up, mask, count, ci);
            return;
        }
        ForwardParallel(a, gate, up, mask, count, chunks);
    }

    // The lambda lives in its own method: its closure would otherwise be allocated on every call, split or not.
    private static void ForwardParallel<T>(T[] a, T[] gate, T[] up, T[]? mask, int count, int chunks) where T : unmanaged, IFloatingPointIeee754<T> =>
        CpuParallel.For(chunks, ci => ForwardChunk(a, gate, up, mask, count, ci));

    private static void ForwardChunk<T>(T[] a, T[] gate, T[] up, T[]? mask, int count, int ci) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Span<T> s = stackalloc T[Piece];
        int end = Math.Min(count, (ci + 1) * Chunk);
        for (int i = ci * Chunk; i < end; i += Piece)
        {
            int len = Math.Min(Piece, end - i);
            var g = gate.AsSpan(i, len); var dst = a.AsSpan(i, len); var sg = s[..len];
            TensorPrimitives.Sigmoid<T>(g, sg);
            TensorPrimitives.Multiply<T>(g, sg, dst);
            TensorPrimitives.Multiply<T>(dst, up.AsSpan(i, len), dst);
            if (mask is not null) TensorPrimitives.Multiply<T>(dst, mask.AsSpan(i, len), dst);
        }
    }

    /// <summary>dgate = ∂/∂g, dup = ∂/∂u of Σ da·a (written, not accumulated).</summary>
    public static void Backward<T>(T[] dgate, T[] dup, T[] da, T[] gate, T[] up, T[]? mask, int count) where T : unmanaged, IFloatingPointIeee754<T>
    {
        CpuParallel.For((count + Chunk - 1) / Chunk, ci =>
        {
            Span<T> s = stackalloc T[Piece];
            Span<T> w = stackalloc T[Piece];
            int end = Math.Min(count, (ci + 1) * Chunk);
            for (int i = ci * Chunk; i < end; i += Piece)
            {
                int len = Math.Min(Piece, end - i);
                var g = gate.AsSpan(i, len); var sg = s[..len]; var t = w[..len];
                var dg = dgate.AsSpan(i, len); var du = dup.AsSpan(i, len);
                TensorPrimitives.Sigmoid<T>(g, sg);
                // d = da·m, kept in dg for now
                if (mask is null) da.AsSpan(i, len).CopyTo(dg);
                else TensorPrimitives.Multiply<T>(da.AsSpan(i, len), mask.AsSpan(i, len), dg);
                // du = d·g·σ
                TensorPrimitives.Multiply<T>(dg, g, du);
                TensorPrimitives.Multiply<T>(du, sg, du);
                // dg = d·u·σ·(1 + g·(1 − σ))
                TensorPrimitives.Subtract<T>(T.One, sg, t);
                TensorPrimitives.MultiplyAdd<T>(g, t, T.One, t);
                TensorPrimitives.Multiply<T>(t, sg, t);
                TensorPrimitives.Multiply<T>(t, up.AsSpan(i, len), t);
                TensorPrimitives.Multiply<T>(dg, t, dg);
            }
        }, parallel: count > Chunk);
    }
}
