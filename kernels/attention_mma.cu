// Causal GQA flash attention on tensor cores (mma.sync m16n8k16 bf16 -> fp32), FlashAttention-2
// style, for head_dim 64 and 128. Same contracts, layouts and argument lists as the generic kernels
// in attention.cu (read its header first); the backward uses flash_attention_backward_preprocess
// from there. Requirements beyond the generic path: d equals the kernel's head_dim (64 or 128,
// checked: a mismatch traps), q/k/v/out/dout/dq/dk/dv 16-byte aligned, sm_80 or newer.
//
// Work split (a warp owns 16 rows of the 16 x n tiles mma.m16n8k16 produces):
//   forward:   block = 4 warps = 64 query rows of one (batch, head); loops over 64-key tiles of K, V
//              (cp.async into shared memory). Q fragments stay in registers; S = Q K^T, the online
//              softmax and O += P V all happen in registers (P reuses the S accumulators as the A
//              fragment of the second product, see accumulators_to_a_fragment).
//   dq:        block = 64 query rows; loops over key tiles; S and dP = dO V^T recomputed,
//              dS = P (dP - D), dQ += dS K.
//   dk, dv:    block = 64 keys of one (batch, kv head), K and V tiles loaded once; loops over the
//              query heads of the group and the query tiles that see these keys; dV += P^T dO,
//              dK += dS^T Q. Two kernels recomputing P cost ~40% more backward FLOPs than one kernel
//              with atomic dQ, and buy determinism and no fp32 dQ scratch.
// Scores are handled in base 2: s2 = s * scale * log2(e), exp2 everywhere, lse stored in natural log.
// Shared-memory rows are padded by 8 bf16 (16 bytes) so ldmatrix reads 8 rows without bank conflicts.
#include "prelude.cuh"

#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/// Row address helpers for ldmatrix (lane l, see the prelude's layout notes):
///   A operand, 16x16 tile at (row0, col0) of a row-major matrix:      row l%16,             col (l/16)*8
///   B operand stored n-major (rows = n, cols = k), n-tiles np*16..+15: row (l/16)*8 + l%8,   col ((l/8)%2)*8
///   B operand stored k-major (rows = k, cols = n), with .trans:        row ((l/8)%2)*8 + l%8, col (l/16)*8
TP_DEVICE int a_row(int l) { return l & 15; }
TP_DEVICE int a_col(int l) { return (l >> 4) * 8; }
TP_DEVICE int bn_row(int l) { return (l >> 4) * 8 + (l & 7); }
TP_DEVICE int bn_col(int l) { return ((l >> 3) & 1) * 8; }
TP_DEVICE int bk_row(int l) { return ((l >> 3) & 1) * 8 + (l & 7); }
TP_DEVICE int bk_col(int l) { return (l >> 4) * 8; }

/// acc[2np], acc[2np+1] += A(16 x 16) * B where B's two 8-column tiles come from one ldmatrix.x4.
TP_DEVICE void mma_pair(float (&acc0)[4], float (&acc1)[4], const u32 (&a)[4], const u32 (&b)[4])
{
    const u32 b0[2] = { b[0], b[1] }, b1[2] = { b[2], b[3] };
    mma_bf16_16816(acc0, a, b0, acc0);
    mma_bf16_16816(acc1, a, b1, acc1);
}

/// Copy `rows` rows of D bf16 (global row i at src + i * stride) into shared tile[rows][D + 8] with
/// cp.async, zero-filling rows >= valid. The caller commits and waits.
template <int D>
TP_DEVICE void load_tile_async(bf16 (*tile)[D + 8], const bf16* src, i64 stride, int rows, int valid)
{
    const int chunks_per_row = D / 8;
    for (int c = threadIdx.x; c < rows * chunks_per_row; c += blockDim.x)
    {
        const int r = c / chunks_per_row, col = (c % chunks_per_row) * 8;
        const bool ok = r < valid;
        cp_async_16(&tile[r][col], src + (ok ? (i64)r * stride : 0) + col, ok);
    }
}

/// The A fragments (16 rows x D) of a row-major bf16 matrix straight from global memory: rows
/// row0 + g and row0 + g + 8, zero when at or beyond `rows`. Used for Q and dO, which stay in registers.
template <int D>
TP_DEVICE void load_a_fragments(u32 (&f)[D / 16][4], const bf16* base, i64 stride, int row0, int rows)
{
    const int l = threadIdx.x & 31, g = l >> 2, tq = l & 3;
    const bool ok0 = row0 + g < rows, ok1 = row0 + g + 8 < rows;
    const u32* r0 = reinterpret_cast<const u32*>(base + (i64)(row0 + g) * stride);
    const u32* r1 = reinterpret_cast<const u32*>(base + (i64)(row0 + g + 8) * stride);
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
    {
        const int w = (ks * 16 + tq * 2) >> 1;   // u32 index of column ks*16 + 2t
        f[ks][0] = ok0 ? r0[w] : 0u;
        f[ks][1] = ok1 ? r1[w] : 0u;
        f[ks][2] = ok0 ? r0[w + 4] : 0u;         // column + 8
        f[ks][3] = ok1 ? r1[w + 4] : 0u;
    }
}

/// Where accumulator element i of n-tile nt lives in a warp's 16 x n result (g = lane/4, tq = lane%4).
TP_DEVICE int frag_row(int g, int i) { return g + (i >> 1) * 8; }
TP_DEVICE int frag_col(int nt, int tq, int i) { return nt * 8 + tq * 2 + (i & 1); }

/// The score tile every attention kernel computes, S[16 x N] += A[16 x D] * B^T: A is a warp's 16 rows as
/// register fragments (Q or dO, from load_a_fragments), B the tile's N rows of D in shared memory (K, V, Q or dO,
/// stored n-major, read with ldmatrix). Accumulator element i of tile nt sits at row g + (i/2)*8, column
/// nt*8 + 2*tq + (i%2) (g = lane/4, tq = lane%4).
template <int D, int N>
TP_DEVICE void score_tile(float (&s)[N / 8][4], const u32 (&a)[D / 16][4], const bf16 (*b)[D + 8], int l)
{
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
#pragma unroll
        for (int np = 0; np < N / 16; np++)
        {
            u32 bfrag[4];
            ldmatrix_x4(bfrag, &b[np * 16 + bn_row(l)][ks * 16 + bn_col(l)]);
            mma_pair(s[2 * np], s[2 * np + 1], a[ks], bfrag);
        }
}

/// score_tile with A read from shared memory too: rows a_row0..+15 of tile `a` (the dk/dv kernel's K and V).
template <int D, int N>
TP_DEVICE void score_tile(float (&s)[N / 8][4], const bf16 (*a)[D + 8], int a_row0, const bf16 (*b)[D + 8], int l)
{
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++)
    {
        u32 afrag[4];
        ldmatrix_x4(afrag, &a[a_row0 + a_row(l)][ks * 16 + a_col(l)]);
#pragma unroll
        for (int np = 0; np < N / 16; np++)
        {
            u32 bfrag[4];
            ldmatrix_x4(bfrag, &b[np * 16 + bn_row(l)][ks * 16 + bn_col(l)]);
            mma_pair(s[2 * np], s[2 * np + 1], afrag, bfrag);
        }
    }
}

/// The second product of every attention kernel, acc[16 x D] += P[16 x N] * B: P is a score tile's
/// accumulators (probabilities or dS), rounded to bf16 A fragments; B the tile's N rows of D in shared memory,
/// k-major, read with ldmatrix.trans (V for O, K for dQ, dO for dV, Q for dK).
template <int D, int N>
TP_DEVICE void accumulate_tile(float (&acc)[D / 8][4], const float (&p)[N / 8][4], const bf16 (*b)[D + 8], int l)
{
#pragma unroll
    for (int kk = 0; kk < N / 16; kk++)
    {
        u32 pa[4];
        accumulators_to_a_fragment(pa, p[2 * kk], p[2 * kk + 1]);
#pragma unroll
        for (int np = 0; np < D / 16; np++)
        {
            u32 bfrag[4];
            ldmatrix_x4_trans(bfrag, &b[kk * 16 + bk_row(l)][np * 16 + bk_col(l)]);
            mma_pair(acc[2 * np], acc[2 * np + 1], pa, bfrag);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

template <int D>
TP_DEVICE void attention_forward_mma(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                     int Tq, int Tkv, int Tcap, int nh, int nkv, int d, float scale)
{
    constexpr int BR = 64, BC = 64;
    __shared__ TP_ALIGN(16) bf16 Ks[BC][D + 8];
    __shared__ TP_ALIGN(16) bf16 Vs[BC][D + 8];
    if (d != D) __trap();
    const int warp = threadIdx.x >> 5, l = threadIdx.x & 31, g = l >> 2, tq = l & 3;
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (nh / nkv);
    // Causal tiles further down see more keys: hand them out first so the short ones fill the tail.
    const int row0 = (gridDim.x - 1 - blockIdx.x) * BR, wrow0 = row0 + warp * 16;
    const int offset = Tkv - Tq;                  // query t sees keys j <= t + offset
    const i64 q_stride = (i64)nh * D, kv_stride = (i64)nkv * D;
    const bf16* qb = q + ((i64)b * Tq * nh + h) * D;
    const bf16* kb = k + ((i64)b * Tcap * nkv + kvh) * D;
    const bf16* vb = v + ((i64)b * Tcap * nkv + kvh) * D;
    const float scale2 = scale * LOG2E;

    u32 qf[D / 16][4];
    load_a_fragments<D>(qf, qb, q_stride, wrow0, Tq);

    float o[D / 8][4];
    zero_fragments(o);
    float m[2] = { -TP_INFINITY, -TP_INFINITY }, lsum[2] = { 0.0f, 0.0f };

    const int last_key = min(Tkv - 1, row0 + BR - 1 + offset);
    for (int kt = 0; kt * BC <= last_key; kt++)
    {
        const int key0 = kt * BC;
        __syncthreads();                           // the previous tile is consumed
        load_tile_async<D>(Ks, kb + (i64)key0 * kv_stride, kv_stride, BC, Tkv - key0);
        cp_async_commit();
        load_tile_async<D>(Vs, vb + (i64)key0 * kv_stride, kv_stride, BC, Tkv - key0);
        cp_async_commit();
        cp_async_wait<1>();                        // K has landed; V keeps loading during S and softmax
        __syncthreads();

        // S = Q K^T for this warp's 16 rows x 64 keys.
        float s[BC / 8][4];
        zero_fragments(s);
        score_tile<D, BC>(s, qf, Ks, l);

        // Causal / length mask, scale to base 2, and the running row max (rows g and g + 8; the four
        // lanes of a quad hold the same two rows).
        float mx[2] = { -TP_INFINITY, -TP_INFINITY };
#pragma unroll
        for (int nt = 0; nt < BC / 8; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
            {
                const int key = key0 + frag_col(nt, tq, i), row = wrow0 + frag_row(g, i);
                const bool visible = key < Tkv && key <= row + offset;
                s[nt][i] = visible ? s[nt][i] * scale2 : -TP_INFINITY;
                mx[i >> 1] = fmaxf(mx[i >> 1], s[nt][i]);
            }
        float alpha[2], m_use[2];
#pragma unroll
        for (int r = 0; r < 2; r++)
        {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(TP_FULL_MASK, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(TP_FULL_MASK, mx[r], 2));
            const float m_new = fmaxf(m[r], mx[r]);
            m_use[r] = m_new == -TP_INFINITY ? 0.0f : m_new;   // a row with nothing visible yet
            alpha[r] = exp2f(m[r] - m_use[r]);
            m[r] = m_new;
            lsum[r] *= alpha[r];
        }
#pragma unroll
        for (int nt = 0; nt < BC / 8; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
            {
                s[nt][i] = exp2f(s[nt][i] - m_use[i >> 1]);
                lsum[i >> 1] += s[nt][i];   // per-lane partial row sum; the quad is summed at the end
            }
#pragma unroll
        for (int nt = 0; nt < D / 8; nt++)
        {
            o[nt][0] *= alpha[0]; o[nt][1] *= alpha[0];
            o[nt][2] *= alpha[1]; o[nt][3] *= alpha[1];
        }

        // O += P V: P (bf16) from the S accumulators, V fragments with ldmatrix.trans.
        cp_async_wait<0>();
        __syncthreads();
        accumulate_tile<D, BC>(o, s, Vs, l);
    }

    // Finish: full row sums across the quad, normalise, store O and lse.
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        lsum[r] += __shfl_xor_sync(TP_FULL_MASK, lsum[r], 1);
        lsum[r] += __shfl_xor_sync(TP_FULL_MASK, lsum[r], 2);
    }
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = wrow0 + g + r * 8;
        if (row >= Tq) continue;
        const float inv = 1.0f / lsum[r];
        u32* dst = reinterpret_cast<u32*>(out + ((i64)b * Tq + row) * q_stride + (i64)h * D);
#pragma unroll
        for (int nt = 0; nt < D / 8; nt++)
            dst[(nt * 8 + tq * 2) >> 1] = pack_bf16x2(o[nt][2 * r] * inv, o[nt][2 * r + 1] * inv);
        if (tq == 0) lse[((i64)b * nh + h) * Tq + row] = (m[r] + log2f(lsum[r])) * LN2;
    }
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_forward_d64(
    bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, int B, int Tq, int Tkv, int Tcap, int nh, int nkv, int d, float scale)
{
    attention_forward_mma<64>(out, lse, q, k, v, Tq, Tkv, Tcap, nh, nkv, d, scale);
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_forward_d128(
    bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, int B, int Tq, int Tkv, int Tcap, int nh, int nkv, int d, float scale)
{
    attention_forward_mma<128>(out, lse, q, k, v, Tq, Tkv, Tcap, nh, nkv, d, scale);
}

// ---------------------------------------------------------------------------------------------
// Backward: dq
// ---------------------------------------------------------------------------------------------

/// Key tile of the dq kernel: 64 keys for d = 64; 32 for d = 128, where Q and dO fragments (64
/// registers) plus S, dP and dQ accumulators would otherwise exceed the register file.
template <int D> TP_DEVICE constexpr int dq_key_tile() { return D == 64 ? 64 : 32; }

template <int D>
TP_DEVICE void attention_backward_dq_mma(bf16* dq, const bf16* q, const bf16* k, const bf16* v, const bf16* dout,
                                         const float* lse, const float* Dsum, int T, int nh, int nkv, int d, float scale)
{
    constexpr int BR = 64, BC = dq_key_tile<D>();
    __shared__ TP_ALIGN(16) bf16 Ks[BC][D + 8];
    __shared__ TP_ALIGN(16) bf16 Vs[BC][D + 8];
    if (d != D) __trap();
    const int warp = threadIdx.x >> 5, l = threadIdx.x & 31, g = l >> 2, tq = l & 3;
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (nh / nkv);
    const int row0 = (gridDim.x - 1 - blockIdx.x) * BR, wrow0 = row0 + warp * 16;   // heaviest tiles first
    const i64 q_stride = (i64)nh * D, kv_stride = (i64)nkv * D;
    const i64 q_base = ((i64)b * T * nh + h) * D;
    const bf16* kb = k + ((i64)b * T * nkv + kvh) * D;
    const bf16* vb = v + ((i64)b * T * nkv + kvh) * D;
    const float scale2 = scale * LOG2E;

    u32 qf[D / 16][4], gf[D / 16][4];
    load_a_fragments<D>(qf, q + q_base, q_stride, wrow0, T);
    load_a_fragments<D>(gf, dout + q_base, q_stride, wrow0, T);
    float lse2[2], Drow[2];
#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = wrow0 + g + r * 8;
        const i64 i = ((i64)b * nh + h) * T + row;
        lse2[r] = row < T ? lse[i] * LOG2E : TP_INFINITY;   // invalid rows: p = 0
        Drow[r] = row < T ? Dsum[i] : 0.0f;
    }

    float acc[D / 8][4];
    zero_fragments(acc);
    const int last_key = min(T - 1, row0 + BR - 1);
    for (int kt = 0; kt * BC <= last_key; kt++)
    {
        const int key0 = kt * BC;
        __syncthreads();
        load_tile_async<D>(Ks, kb + (i64)key0 * kv_stride, kv_stride, BC, T - key0);
        load_tile_async<D>(Vs, vb + (i64)key0 * kv_stride, kv_stride, BC, T - key0);
        cp_async_commit();
        cp_async_wait<0>();
        __syncthreads();

        float s[BC / 8][4], dp[BC / 8][4];
        zero_fragments(s);
        zero_fragments(dp);
        score_tile<D, BC>(s, qf, Ks, l);    // S = Q K^T
        score_tile<D, BC>(dp, gf, Vs, l);   // dP = dO V^T
        // dS = P * (dP - D), written over s.
#pragma unroll
        for (int nt = 0; nt < BC / 8; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++)
            {
                const int key = key0 + frag_col(nt, tq, i), row = wrow0 + frag_row(g, i);
                const bool visible = key < T && key <= row;
                const float p = visible ? exp2f(s[nt][i] * scale2 - lse2[i >> 1]) : 0.0f;
                s[nt][i] = p * (dp[nt][i] - Drow[i >> 1]);
            }
        accumulate_tile<D, BC>(acc, s, Ks, l);   // dQ += dS K
    }

#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int row = wrow0 + g + r * 8;
        if (row >= T) continue;
        u32* dst = reinterpret_cast<u32*>(dq + q_base + (i64)row * q_stride);
#pragma unroll
        for (int nt = 0; nt < D / 8; nt++)
            dst[(nt * 8 + tq * 2) >> 1] = pack_bf16x2(acc[nt][2 * r] * scale, acc[nt][2 * r + 1] * scale);
    }
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_backward_dq_d64(
    bf16* __restrict__ dq, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Dsum,
    int B, int T, int nh, int nkv, int d, float scale)
{
    attention_backward_dq_mma<64>(dq, q, k, v, dout, lse, Dsum, T, nh, nkv, d, scale);
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_backward_dq_d128(
    bf16* __restrict__ dq, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Dsum,
    int B, int T, int nh, int nkv, int d, float scale)
{
    attention_backward_dq_mma<128>(dq, q, k, v, dout, lse, Dsum, T, nh, nkv, d, scale);
}

// ---------------------------------------------------------------------------------------------
// Backward: dk, dv
// ---------------------------------------------------------------------------------------------

/// Query tile of the dk/dv kernel: 64 for d = 64; 16 for d = 128 so that K, V (64 keys) and the Q,
/// dO tiles fit the 48 KiB of static shared memory.
template <int D> TP_DEVICE constexpr int dkdv_query_tile() { return D == 64 ? 64 : 16; }

template <int D>
TP_DEVICE void attention_backward_dkdv_mma(bf16* dk, bf16* dv, const bf16* q, const bf16* k, const bf16* v,
                                           const bf16* dout, const float* lse, const float* Dsum,
                                           int T, int nh, int nkv, int d, float scale)
{
    constexpr int BK = 64, BQ = dkdv_query_tile<D>();
    __shared__ TP_ALIGN(16) bf16 Ks[BK][D + 8];
    __shared__ TP_ALIGN(16) bf16 Vs[BK][D + 8];
    __shared__ TP_ALIGN(16) bf16 Qs[BQ][D + 8];
    __shared__ TP_ALIGN(16) bf16 Gs[BQ][D + 8];      // dO
    __shared__ float lse2s[BQ], Ds[BQ];
    if (d != D) __trap();
    const int warp = threadIdx.x >> 5, l = threadIdx.x & 31, g = l >> 2, tq = l & 3;
    const int kvh = blockIdx.y, b = blockIdx.z, group = nh / nkv;
    const int key0 = blockIdx.x * BK, wkey0 = warp * 16;   // warp's keys, local to the tile
    const i64 q_stride = (i64)nh * D, kv_stride = (i64)nkv * D;
    const i64 kv_base = ((i64)b * T * nkv + kvh) * D + (i64)key0 * kv_stride;
    const float scale2 = scale * LOG2E;

    load_tile_async<D>(Ks, k + kv_base, kv_stride, BK, T - key0);
    load_tile_async<D>(Vs, v + kv_base, kv_stride, BK, T - key0);
    cp_async_commit();

    float dk_acc[D / 8][4], dv_acc[D / 8][4];
    zero_fragments(dk_acc);
    zero_fragments(dv_acc);

    for (int h = kvh * group; h < (kvh + 1) * group; h++)
    {
        const i64 q_base = ((i64)b * T * nh + h) * D;
        const float* lse_h = lse + ((i64)b * nh + h) * T;
        const float* D_h = Dsum + ((i64)b * nh + h) * T;
        for (int i0 = (key0 / BQ) * BQ; i0 < T; i0 += BQ)   // the first query tile that sees key0
        {
            __syncthreads();                                   // the previous Q / dO tile is consumed
            load_tile_async<D>(Qs, q + q_base + (i64)i0 * q_stride, q_stride, BQ, T - i0);
            load_tile_async<D>(Gs, dout + q_base + (i64)i0 * q_stride, q_stride, BQ, T - i0);
            cp_async_commit();
            for (int i = threadIdx.x; i < BQ; i += blockDim.x)
            {
                const bool ok = i0 + i < T;
                lse2s[i] = ok ? lse_h[i0 + i] * LOG2E : TP_INFINITY;
                Ds[i] = ok ? D_h[i0 + i] : 0.0f;
            }
            cp_async_wait<0>();
            __syncthreads();

            // S^T = K Q^T and dP^T = V dO^T for this warp's 16 keys x BQ queries.
            float s[BQ / 8][4], dp[BQ / 8][4];
            zero_fragments(s);
            zero_fragments(dp);
            score_tile<D, BQ>(s, Ks, wkey0, Qs, l);
            score_tile<D, BQ>(dp, Vs, wkey0, Gs, l);
            // P^T (into s) and dS^T (into dp); element i of tile nt: key wkey0 + g + (i/2)*8,
            // query nt*8 + 2t + (i%2).
#pragma unroll
            for (int nt = 0; nt < BQ / 8; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++)
                {
                    const int qi = frag_col(nt, tq, i), key = key0 + wkey0 + frag_row(g, i);
                    const bool visible = i0 + qi < T && key <= i0 + qi && key < T;
                    const float p = visible ? exp2f(s[nt][i] * scale2 - lse2s[qi]) : 0.0f;
                    s[nt][i] = p;
                    dp[nt][i] = p * (dp[nt][i] - Ds[qi]);
                }
            accumulate_tile<D, BQ>(dv_acc, s, Gs, l);    // dV += P^T dO
            accumulate_tile<D, BQ>(dk_acc, dp, Qs, l);   // dK += dS^T Q
        }
    }
    cp_async_wait<0>();   // (no-op unless T == 0 left the K/V copies unwaited)

#pragma unroll
    for (int r = 0; r < 2; r++)
    {
        const int key = key0 + wkey0 + g + r * 8;
        if (key >= T) continue;
        const i64 base = ((i64)b * T * nkv + kvh) * D + (i64)key * kv_stride;
        u32* dkr = reinterpret_cast<u32*>(dk + base);
        u32* dvr = reinterpret_cast<u32*>(dv + base);
#pragma unroll
        for (int nt = 0; nt < D / 8; nt++)
        {
            const int w = (nt * 8 + tq * 2) >> 1;
            dkr[w] = pack_bf16x2(dk_acc[nt][2 * r] * scale, dk_acc[nt][2 * r + 1] * scale);
            dvr[w] = pack_bf16x2(dv_acc[nt][2 * r], dv_acc[nt][2 * r + 1]);
        }
    }
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_backward_dkdv_d64(
    bf16* __restrict__ dk, bf16* __restrict__ dv, const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ Dsum, int B, int T, int nh, int nkv, int d, float scale)
{
    attention_backward_dkdv_mma<64>(dk, dv, q, k, v, dout, lse, Dsum, T, nh, nkv, d, scale);
}

extern "C" __global__ void __launch_bounds__(128) flash_attention_backward_dkdv_d128(
    bf16* __restrict__ dk, bf16* __restrict__ dv, const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ Dsum, int B, int T, int nh, int nkv, int d, float scale)
{
    attention_backward_dkdv_mma<128>(dk, dv, q, k, v, dout, lse, Dsum, T, nh, nkv, d, scale);
}
