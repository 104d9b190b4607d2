using System.Buffers;
using System.Numerics;
using System.Numerics.Tensors;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Causal grouped-query attention, the CPU twin of the flash-attention kernel: it saves the output and
/// the per-row logsumexp (not the T×T probabilities), and the backward recomputes P = exp(S − lse).
/// Query head h reads key/value head h / (nh / nkv); K and V are never repeated in memory.
/// Layouts: q, out [B, Tq, nh, d]; k, v [B, tkCap, nkv, d] (tkCap ≥ kvLen, a KV cache may be larger);
/// lse [B, nh, Tq]. Query t sits at position qPos0 + t and sees keys 0 .. qPos0 + t.
///
/// Work is done in blocks of QB queries, each against only the keys its last query can see, with the
/// packed GEMM (serial inside a head; heads run in parallel): S = scale·Q·Kᵀ, row softmax, O = P·V. The
/// causal triangle thus costs about 5/8 of the full square at T = 256 instead of 1/2, in exchange for
/// GEMM speed instead of one dot product per (query, key).
/// </summary>
internal static unsafe class Attention
{
    /// <summary>Queries per block: S and P of a block are QB × keys.</summary>
    private const int QB = 64;

    public static void Forward<T>(T[] outp, T[] lse, T[] q, T[] k, T[] v, int b, int tq, int tkCap, int qPos0,
        int nh, int nkv, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int maxKeys = qPos0 + tq;
        bool parallel = (long)b * nh * tq * maxKeys * d > 100_000;
        if (!CpuParallel.Splits(b * nh, parallel))
        {
            for (int bh = 0; bh < b * nh; bh++) ForwardHead(outp, lse, q, k, v, bh, tq, tkCap, qPos0, nh, nkv, d);
            return;
        }
        ForwardParallel(outp, lse, q, k, v, b, tq, tkCap, qPos0, nh, nkv, d);
    }

    // The lambda lives in its own method: its closure would otherwise be allocated on every call, split or not.
    private static void ForwardParallel<T>(T[] outp, T[] lse, T[] q, T[] k, T[] v, int b, int tq, int tkCap, int qPos0,
        int nh, int nkv, int d) where T : unmanaged, IFloatingPointIeee754<T> =>
        CpuParallel.For(b * nh, bh => ForwardHead(outp, lse, q, k, v, bh, tq, tkCap, qPos0, nh, nkv, d));

    /// <summary>One (row, query head) of <see cref="Forward"/>.</summary>
    private static void ForwardHead<T>(T[] outp, T[] lse, T[] q, T[] k, T[] v, int bh, int tq, int tkCap, int qPos0,
        int nh, int nkv, int d) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int group = nh / nkv;
        T scale = T.One / T.Sqrt(T.CreateChecked(d));
        int maxKeys = qPos0 + tq;
        int bi = bh / nh, h = bh % nh, g = h / group;
        if (tq == 1)
        {
            DecodeHead(outp, lse, q, k, v, bi, h, g, tkCap, qPos0, nh, nkv, d, scale);
            return;
        }
        // Sized by the cache capacity, not the keys seen so far: decode steps then rent from one pool bucket (no allocation).
        T[] sBuf = ArrayPool<T>.Shared.Rent(Math.Min(QB, tq) * Math.Max(maxKeys, tkCap));
        try
        {
            fixed (T* s = sBuf, pq = q, pk = k, pv = v, po = outp)
            {
                T* kBase = pk + ((long)bi * tkCap * nkv + g) * d, vBase = pv + ((long)bi * tkCap * nkv + g) * d;
                for (int i0 = 0; i0 < tq; i0 += QB)
                {
                    int rows = Math.Min(QB, tq - i0), keys = qPos0 + i0 + rows;
                    long qOff = ((long)(bi * tq + i0) * nh + h) * d;
                    // S[rows, keys] = scale · Q_blk · Kᵀ
                    Gemm.Run(rows, keys, d, pq + qOff, nh * d, 1, kBase, 1, nkv * d, s, keys, false, scale, parallel: false);
                    // P = exp(S − rowmax) with the invisible keys at −∞ (so exp gives 0): one Exp over the block.
                    for (int r = 0; r < rows; r++)
                    {
                        int visible = qPos0 + i0 + r + 1;
                        var row = new Span<T>(s + (long)r * keys, keys);
                        T max = TensorPrimitives.Max<T>(row[..visible]);
                        TensorPrimitives.Subtract(row[..visible], max, row[..visible]);
                        row[visible..].Fill(T.NegativeInfinity);
                        lse[(bi * nh + h) * tq + i0 + r] = max;
                    }
                    var block = new Span<T>(s, rows * keys);
                    TensorPrimitives.Exp<T>(block, block);
                    // O_blk = P · V[0..keys), then each row divided by its Σ P (d values instead of keys).
                    Gemm.Run(rows, d, keys, s, keys, 1, vBase, nkv * d, 1, po + qOff, nh * d, false, T.One, parallel: false);
                    for (int r = 0; r < rows; r++)
                    {
                        T sum = TensorPrimitives.Sum<T>(block.Slice(r * keys, qPos0 + i0 + r + 1));
                        lse[(bi * nh + h) * tq + i0 + r] += T.Log(sum);
                        var o = new Span<T>(po + qOff + (long)r * nh * d, d);
                        TensorPrimitives.Multiply(o, T.One / sum, o);
                    }
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(sBuf);
        }
    }

    /// <summary>
    /// One query (a decode step) of one head against its keys 0 .. qPos0: a dot product per key and an axpy per value
    /// row, read in place from the cache. The blocked path would pack the head's keys and values into GEMM slivers and
    /// run a 6-row micro-kernel on one row; for a single query that copying is most of the work.
    /// </summary>
    private static void DecodeHead<T>(T[] outp, T[] lse, T[] q, T[] k, T[] v, int bi, int h, int g, int tkCap, int qPos0,
        int nh, int nkv, int d, T scale) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int keys = qPos0 + 1, kvStride = nkv * d;
        // Sized by the cache capacity, not the keys seen so far: decode steps rent from one pool bucket (no allocation).
        T[] sBuf = ArrayPool<T>.Shared.Rent(Math.Max(keys, tkCap));
        try
        {
            var s = sBuf.AsSpan(0, keys);
            var qh = q.AsSpan((bi * nh + h) * d, d);
            int kv0 = (bi * tkCap * nkv + g) * d;
            for (int j = 0; j < keys; j++) s[j] = scale * TensorPrimitives.Dot<T>(qh, k.AsSpan(kv0 + j * kvStride, d));
            T max = TensorPrimitives.Max<T>(s);
            TensorPrimitives.Subtract(s, max, s);
            TensorPrimitives.Exp<T>(s, s);
            T sum = TensorPrimitives.Sum<T>(s);
            var o = outp.AsSpan((bi * nh + h) * d, d);
            o.Clear();
            for (int j = 0; j < keys; j++) TensorPrimitives.MultiplyAdd(v.AsSpan(kv0 + j * kvStride, d), s[j], o, o);
            TensorPrimitives.Multiply(o, T.One / sum, o);
            lse[bi * nh + h] = max + T.Log(sum);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(sBuf);
        }
    }

    /// <summary>
    /// dq[B,T,nh,d], dk, dv [B,T,nkv,d] (written) from dout, with keys = queries (training, qPos0 = 0).
    /// D_t = dO_t·O_t;  dS_tj = P_tj (dO_t·v_j − D_t);  dq_t = scale Σ_j dS_tj k_j;  dk_j = scale Σ_t dS_tj q_t;  dv_j = Σ_t P_tj dO_t.
    /// Per query block: P (recomputed), dP = dO·Vᵀ, dS, then dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO as GEMMs.
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
            int blockLen = Math.Min(QB, t) * t;
            T[] pBuf = ArrayPool<T>.Shared.Rent(blockLen), dpBuf = ArrayPool<T>.Shared.Rent(blockLen);
            try
            {
                fixed (T* p = pBuf, dp = dpBuf, pq = q, pk = k, pv = v, pdo = dout, pdq = dq, pdk = dk, pdv = dv)
                {
                    long kvOff = ((long)bi * t * nkv + g) * d;
                    int qs = nh * d, kvs = nkv * d;
                    for (int h = g * group; h < (g + 1) * group; h++)
                    {
                        for (int i0 = 0; i0 < t; i0 += QB)
                        {
                            int rows = Math.Min(QB, t - i0), keys = i0 + rows;
                            long qOff = ((long)(bi * t + i0) * nh + h) * d;
                            // P = exp(scale·Q·Kᵀ − lse) on the causal part, 0 above it; dP = dO·Vᵀ.
                            Gemm.Run(rows, keys, d, pq + qOff, qs, 1, pk + kvOff, 1, kvs, p, keys, false, scale, parallel: false);
                            Gemm.Run(rows, keys, d, pdo + qOff, qs, 1, pv + kvOff, 1, kvs, dp, keys, false, T.One, parallel: false);
                            for (int r = 0; r < rows; r++)
                            {
                                int visible = i0 + r + 1;
                                var prow = new Span<T>(p + (long)r * keys, keys);
                                TensorPrimitives.Subtract(prow[..visible], lse[(bi * nh + h) * t + i0 + r], prow[..visible]);
                                prow[visible..].Fill(T.NegativeInfinity);
                            }
                            var pBlock = new Span<T>(p, rows * keys);
                            TensorPrimitives.Exp<T>(pBlock, pBlock);
                            for (int r = 0; r < rows; r++)
                            {
                                // dS/scale = P ∘ (dP − D), written over dP (zero where P is); the scale goes into the GEMMs' alpha.
                                int visible = i0 + r + 1;
                                var dprow = new Span<T>(dp + (long)r * keys, visible);
                                T dsum = TensorPrimitives.Dot<T>(new ReadOnlySpan<T>(pdo + qOff + (long)r * qs, d), outp.AsSpan((int)(qOff + (long)r * qs), d));
                                TensorPrimitives.Subtract(dprow, dsum, dprow);
                                TensorPrimitives.Multiply(dprow, pBlock.Slice(r * keys, visible), dprow);
                                new Span<T>(dp + (long)r * keys + visible, keys - visible).Clear();
                            }
                            // dQ_blk = scale·dS · K;  dK[0..keys) += scale·dSᵀ · Q_blk;  dV[0..keys) += Pᵀ · dO_blk
                            Gemm.Run(rows, d, keys, dp, keys, 1, pk + kvOff, kvs, 1, pdq + qOff, qs, false, scale, parallel: false);
                            Gemm.Run(keys, d, rows, dp, 1, keys, pq + qOff, qs, 1, pdk + kvOff, kvs, true, scale, parallel: false);
                            Gemm.Run(keys, d, rows, p, 1, keys, pdo + qOff, qs, 1, pdv + kvOff, kvs, true, T.One, parallel: false);
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(pBuf);
                ArrayPool<T>.Shared.Return(dpBuf);
            }
        }, parallel: (long)b * nh * t * t * d > 100_000);
    }
}
