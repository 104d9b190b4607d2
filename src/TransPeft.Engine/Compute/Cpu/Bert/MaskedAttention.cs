using System.Numerics;
using System.Numerics.Tensors;

namespace TransPeft.Engine.Compute.Cpu.Bert;

/// <summary>
/// Bidirectional multi-head attention with a key padding mask (BERT's): for batch b and head h,
///   S = q·kᵀ / √D,  S[i, j] = −∞ where key j is padding,  P = softmax_j(S),  out = P·v.
/// q, k, v and out are [B*T, H*D] with heads side by side in each row (the layout the linear layers write), so
/// each head is a strided view and nothing is transposed in memory. Every query row attends (padded queries too,
/// as in Hugging Face and ONNX Runtime; pooling ignores them). The forward saves P [B, heads, T, T]: sentence
/// encoders see T ≤ 512, and keeping P makes the backward two GEMMs and a softmax Jacobian per head:
///   dP = dout·vᵀ,  dv += Pᵀ·dout,  dS = P∘(dP − rowsum(dP∘P)),  dq += dS·k/√D,  dk += dSᵀ·q/√D.
/// </summary>
internal static unsafe class MaskedAttention
{
    /// <summary>out[B*T, heads*D] and probs[B, heads, T, T] from q, k, v [B*T, heads*D] and validLength[B].</summary>
    public static void Forward<T>(T[] outp, T[] probs, T[] q, T[] k, T[] v, int[] validLength, int b, int t, int heads, int d)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int hd = heads * d;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        CpuParallel.For(b * heads, bh =>
        {
            int bi = bh / heads, h = bh % heads, valid = validLength[bi];
            long row0 = (long)bi * t * hd + h * d;
            long p0 = (long)bh * t * t;
            fixed (T* pq = q, pk = k, pv = v, po = outp, pp = probs)
            {
                // S[t, valid] = q·kᵀ over the valid keys only; masked keys get probability 0.
                Gemm.Run(t, valid, d, pq + row0, hd, 1, pk + row0, 1, hd, pp + p0, t, false, scale, parallel: false);
                for (int i = 0; i < t; i++)
                {
                    var row = new Span<T>(pp + p0 + (long)i * t, t);
                    var live = row[..valid];
                    T max = TensorPrimitives.Max<T>(live);
                    TensorPrimitives.Subtract(live, max, live);
                    TensorPrimitives.Exp<T>(live, live);
                    T sum = TensorPrimitives.Sum<T>(live);
                    TensorPrimitives.Divide(live, sum, live);
                    row[valid..].Clear();
                }
                Gemm.Run(t, d, valid, pp + p0, t, 1, pv + row0, hd, 1, po + row0, hd, false, T.One, parallel: false);
            }
        }, parallel: b * heads > 1);
    }

    /// <summary>dq, dk, dv [B*T, heads*D] += gradients from dout, given the forward's inputs and saved probs.</summary>
    public static void Backward<T>(T[] dq, T[] dk, T[] dv, T[] dout, T[] q, T[] k, T[] v, T[] probs, int[] validLength,
        int b, int t, int heads, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int hd = heads * d;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        CpuParallel.For(b * heads, bh =>
        {
            int bi = bh / heads, h = bh % heads, valid = validLength[bi];
            long row0 = (long)bi * t * hd + h * d;
            long p0 = (long)bh * t * t;
            T[] dsBuf = System.Buffers.ArrayPool<T>.Shared.Rent(t * valid);
            fixed (T* pq = q, pk = k, pv = v, pp = probs, pdo = dout, pdq = dq, pdk = dk, pdv = dv, pds = dsBuf)
            {
                // dv[valid, D] += Pᵀ·dout ; dP[t, valid] = dout·vᵀ
                Gemm.Run(valid, d, t, pp + p0, 1, t, pdo + row0, hd, 1, pdv + row0, hd, true, T.One, parallel: false);
                Gemm.Run(t, valid, d, pdo + row0, hd, 1, pv + row0, 1, hd, pds, valid, false, T.One, parallel: false);
                for (int i = 0; i < t; i++)
                {
                    var ds = new Span<T>(pds + (long)i * valid, valid);
                    var p = new ReadOnlySpan<T>(pp + p0 + (long)i * t, valid);
                    T dot = TensorPrimitives.Dot(ds, p);
                    TensorPrimitives.Subtract(ds, dot, ds);
                    TensorPrimitives.Multiply(ds, p, ds);
                }
                // dq[t, D] += dS·k·scale ; dk[valid, D] += dSᵀ·q·scale
                Gemm.Run(t, d, valid, pds, valid, 1, pk + row0, hd, 1, pdq + row0, hd, true, scale, parallel: false);
                Gemm.Run(valid, d, t, pds, 1, valid, pq + row0, hd, 1, pdk + row0, hd, true, scale, parallel: false);
            }
            System.Buffers.ArrayPool<T>.Shared.Return(dsBuf);
        }, parallel: b * heads > 1);
    }
}
