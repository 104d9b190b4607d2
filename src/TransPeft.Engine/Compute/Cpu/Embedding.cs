using System.Numerics;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>Token embedding lookup: out[n, :] = wte[ids[n], :]. No scaling (Llama).</summary>
internal static class Embedding
{
    /// <summary>out[N,C] = wte[V,C][ids[N]].</summary>
    public static void Forward<T>(T[] outp, ReadOnlySpan<int> ids, T[] wte, int n, int c, int v) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < n; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)v) throw new ArgumentOutOfRangeException(nameof(ids), $"token id {id} at position {i} is outside the vocabulary [0, {v})");
            wte.AsSpan(id * c, c).CopyTo(outp.AsSpan(i * c, c));
        }
    }

    /// <summary>dwte[V,C] += scatter of dout[N,C] by ids (rows of unused tokens stay untouched).</summary>
    public static void Backward<T>(T[] dwte, T[] dout, int[] ids, int n, int c) where T : unmanaged, INumber<T>
    {
        for (int i = 0; i < n; i++)
            System.Numerics.Tensors.TensorPrimitives.Add(dwte.AsSpan(ids[i] * c, c), dout.AsSpan(i * c, c), dwte.AsSpan(ids[i] * c, c));
    }
}
