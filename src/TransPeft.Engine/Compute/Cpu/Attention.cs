using System.Numerics;
using System.Numerics.Tensors;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Causal grouped-query attention, the CPU twin of the flash-attention kernel: it saves the output and
/// the per-row logsumexp (not the T×T probabilities), and the backward recomputes P = exp(S − lse).
/// Query head h reads key/value head h / (nh / nkv); K and V are never repeated in memory.
/// Layouts: q, out [B, Tq, nh, d]; k, v [B, tkCap, nkv, d] (tkCap ≥ kvLen, a KV cache may be larger);
/// lse [B, nh, Tq]. Query t sits at position qPos0 + t and sees keys 0 .. qPos0 + t.
/// </summary>
internal static class Attention
{
    public static void Forward<T>(T[] outp, T[] lse, T[] q, T[] k, T[] v, int b, int tq, int tkCap, int qPos0,
        int nh, int nkv, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int group = nh / nkv;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        int maxKeys = qPos0 + tq;
        CpuParallel.For(b * nh, bh =>
        {
            int bi = bh / nh, h = bh % nh, g = h / group;
            var scores = new T[maxKeys];
            for (int t = 0; t < tq; t++)
            {
                int keys = qPos0 + t + 1;
                var qv = q.AsSpan(((bi * tq + t) * nh + h) * d, d);
                T max = T.NegativeInfinity;
                for (int j = 0; j < keys; j++)
                {
                    T s = TensorPrimitives.Dot<T>(qv, k.AsSpan(((bi * tkCap + j) * nkv + g) * d, d)) * scale;
                    scores[j] = s;
                    if (s > max) max = s;
                }
                T sum = T.Zero;
                for (int j = 0; j < keys; j++) { T e = T.Exp(scores[j] - max); scores[j] = e; sum += e; }
                lse[(bi * nh + h) * tq + t] = max + T.Log(sum);
                var o = outp.AsSpan(((bi * tq + t) * nh + h) * d, d);
                o.Clear();
                T inv = T.One / sum;
                for (int j = 0; j < keys; j++)
                    TensorPrimitives.MultiplyAdd<T>(v.AsSpan(((bi * tkCap + j) * nkv + g) * d, d), scores[j] * inv, o, o);
            }
        }, parallel: (long)b * nh * tq * maxKeys * d > 100_000);
    }

    /// <summary>
    /// dq[B,T,nh,d], dk, dv [B,T,nkv,d] (written) from dout, with keys = queries (training, qPos0 = 0).
    /// D_t = dO_t·O_t;  dS_tj = P_tj (dO_t·v_j − D_t);  dq_t = scale Σ_j dS_tj k_j;  dk_j = scale Σ_t dS_tj q_t;  dv_j = Σ_t P_tj dO_t.
    /// Work is split by (batch, kv head) so the query heads of one group add into their shared dk/dv without races.
    /// </summary>
    public static void Backward<T>(T[] dq, T[] dk, T[] dv, T[] dout, T[] q, T[] k, T[] v, T[] outp, T[] lse,
        int b, int t, int nh, int nkv, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int group = nh / nkv;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        CpuParallel.For(b * nkv, bg =>
        {
            int bi = bg / nkv, g = bg % nkv;
            for (int j = 0; j < t; j++)
            {
                dk.AsSpan(((bi * t + j) * nkv + g) * d, d).Clear();
                dv.AsSpan(((bi * t + j) * nkv + g) * d, d).Clear();
            }
            var p = new T[t];
            for (int h = g * group; h < (g + 1) * group; h++)
            {
                for (int qi = 0; qi < t; qi++)
                {
                    int keys = qi + 1;
                    int qOff = ((bi * t + qi) * nh + h) * d;
                    var qv = q.AsSpan(qOff, d);
                    var dov = dout.AsSpan(qOff, d);
                    T l = lse[(bi * nh + h) * t + qi];
                    T dsum = TensorPrimitives.Dot<T>(dov, outp.AsSpan(qOff, d));
                    var dqv = dq.AsSpan(qOff, d);
                    dqv.Clear();
                    for (int j = 0; j < keys; j++)
                    {
                        int kOff = ((bi * t + j) * nkv + g) * d;
                        var kv = k.AsSpan(kOff, d);
                        T pj = T.Exp(TensorPrimitives.Dot<T>(qv, kv) * scale - l);
                        // dv_j += P_tj dO_t
                        TensorPrimitives.MultiplyAdd<T>(dov, pj, dv.AsSpan(kOff, d), dv.AsSpan(kOff, d));
                        T dp = TensorPrimitives.Dot<T>(dov, v.AsSpan(kOff, d));
                        T ds = pj * (dp - dsum) * scale;
                        TensorPrimitives.MultiplyAdd<T>(kv, ds, dqv, dqv);
                        TensorPrimitives.MultiplyAdd<T>(qv, ds, dk.AsSpan(kOff, d), dk.AsSpan(kOff, d));
                    }
                }
            }
        }, parallel: (long)b * nh * t * t * d > 100_000);
    }
}
