// Causal attention with grouped-query heads, flash style (never an N x N score matrix in memory):
// the generic path for any even head_dim up to 256, in plain fp32 on CUDA cores, one warp per row.
// The tensor-core paths for head_dim 64 and 128 are in attention_mma.cu and share these contracts,
// argument lists and the backward preprocess below. Mirrors Compute/Cpu/Attention.cs (its qPos0 = Tkv - Tq).
//
// Layouts (row-major, bf16 unless noted):
//   q, out, dq   [B, Tq, nh, d]
//   k, v         [B, Tcap, nkv, d]   keys 0 .. Tkv-1 are valid; Tcap >= Tkv is the row capacity
//                                    (a KV cache), Tcap = Tkv = Tq = T when training
//   lse, Dsum    [B, nh, Tq] fp32    per-row logsumexp of the scaled scores, rowsum(dO * O)
// Query row t sits at position t + (Tkv - Tq) and sees keys j <= t + Tkv - Tq (causal).
// Query head h reads key/value head h / (nh / nkv): K and V are never repeated in memory, and the
// backward sums dk, dv over the nh / nkv query heads of a group.
//
// Softmax: s = scale * q.k (scale = d^-0.5 for these models), p = exp(s - lse).
// Backward (FlashAttention-2): D = rowsum(dO * O); dP = dO V^T; dS = P * (dP - D);
//   dQ = scale * dS K;  dK = scale * dS^T Q;  dV = P^T dO.
// dq and dk/dv come from two kernels that both recompute P: no atomics, deterministic results.
#include "prelude.cuh"

#define ATT_WARPS 4

TP_DEVICE i64 q_row(int b, int t, int h, int Tq, int nh, int d) { return (((i64)b * Tq + t) * nh + h) * d; }
TP_DEVICE i64 kv_row(int b, int j, int g, int Tcap, int nkv, int d) { return (((i64)b * Tcap + j) * nkv + g) * d; }

/// out = softmax(scale * q k^T, causal) v and lse, for any even d <= 256 and nh a multiple of nkv,
/// Tkv >= Tq >= 1. Launch: blockDim.x = 128 (4 warps, one query row each), gridDim = (ceil(Tq / 4), nh, B).
extern "C" __global__ void __launch_bounds__(128) flash_attention_forward(
    bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, int B, int Tq, int Tkv, int Tcap, int nh, int nkv, int d, float scale)
{
    __shared__ float qs[ATT_WARPS][ATT_MAX_D];
    if (d > ATT_MAX_D || (d & 1)) __trap();   // outside this kernel's contract: fail loudly
    const int warp = threadIdx.x >> 5;
    const int t = blockIdx.x * ATT_WARPS + warp, h = blockIdx.y, b = blockIdx.z;
    if (t >= Tq) return;                  // whole warp; no block-wide barrier follows
    const int g = h / (nh / nkv);
    // The row itself is prelude.cuh's attention_row, shared with decode.cu's decode_attention.
    attention_row(out + q_row(b, t, h, Tq, nh, d), lse + ((i64)b * nh + h) * Tq + t, qs[warp], q + q_row(b, t, h, Tq, nh, d),
                  k + kv_row(b, 0, g, Tcap, nkv, d), v + kv_row(b, 0, g, Tcap, nkv, d), (i64)nkv * d, t + Tkv - Tq, d, scale);
}

/// Dsum[b, h, t] = sum over c of dout[b, t, h, c] * out[b, t, h, c] (fp32), for out, dout [B, T, nh, d].
/// Shared by the generic and tensor-core backward passes. Launch: blockDim.x a multiple of 32 (128
/// recommended), gridDim.x = ceil(B * T * nh / (blockDim.x / 32)): one warp per row.
extern "C" __global__ void flash_attention_backward_preprocess(float* __restrict__ Dsum, const bf16* __restrict__ out,
                                                              const bf16* __restrict__ dout, int B, int T, int nh, int d)
{
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);   // (b * T + t) * nh + h
    const int lane = threadIdx.x & 31;
    if (row >= (i64)B * T * nh) return;
    const bf16* o = out + row * d;
    const bf16* g = dout + row * d;
    float acc = 0.0f;
    for (int c = lane; c < d; c += 32) acc += bf16_to_f32(o[c]) * bf16_to_f32(g[c]);
    acc = warp_sum(acc);
    if (lane == 0)
    {
        const int h = (int)(row % nh);
        const i64 bt = row / nh;
        const int t = (int)(bt % T), b = (int)(bt / T);
        Dsum[((i64)b * nh + h) * T + t] = acc;
    }
}

/// dq [B, T, nh, d] (overwritten) for the causal self-attention of the forward (Tq = Tkv = Tcap = T).
/// lse and Dsum from the forward and the preprocess. Launch as flash_attention_forward with Tq = T.
extern "C" __global__ void __launch_bounds__(128) flash_attention_backward_dq(
    bf16* __restrict__ dq, const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
    const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Dsum,
    int B, int T, int nh, int nkv, int d, float scale)
{
    __shared__ float qs[ATT_WARPS][ATT_MAX_D];
    __shared__ float gs[ATT_WARPS][ATT_MAX_D];
    if (d > ATT_MAX_D || (d & 1)) __trap();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t = blockIdx.x * ATT_WARPS + warp, h = blockIdx.y, b = blockIdx.z;
    if (t >= T) return;
    const int g = h / (nh / nkv);
    const i64 r = q_row(b, t, h, T, nh, d);
    for (int c = lane; c < d; c += 32) { qs[warp][c] = bf16_to_f32(q[r + c]); gs[warp][c] = bf16_to_f32(dout[r + c]); }
    __syncwarp();
    const float row_lse = lse[((i64)b * nh + h) * T + t], row_D = Dsum[((i64)b * nh + h) * T + t];

    float acc[ATT_DIMS_PER_LANE];
    for (int i = 0; i < ATT_DIMS_PER_LANE; i++) acc[i] = 0.0f;
    for (int j0 = 0; j0 <= t; j0 += 32)
    {
        const int j = j0 + lane;
        float ds = 0.0f;
        if (j <= t)
        {
            const float p = expf(scale * dot_row(qs[warp], k + kv_row(b, j, g, T, nkv, d), d) - row_lse);
            const float dp = dot_row(gs[warp], v + kv_row(b, j, g, T, nkv, d), d);
            ds = p * (dp - row_D);
        }
        const int span = min(32, t - j0 + 1);
        for (int jj = 0; jj < span; jj++)
        {
            const float dsj = __shfl_sync(TP_FULL_MASK, ds, jj);
            const bf16* kr = k + kv_row(b, j0 + jj, g, T, nkv, d);
#pragma unroll
            for (int i = 0; i < ATT_DIMS_PER_LANE; i++)
            {
                const int c = lane + 32 * i;
                if (c < d) acc[i] += dsj * bf16_to_f32(kr[c]);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < ATT_DIMS_PER_LANE; i++)
    {
        const int c = lane + 32 * i;
        if (c < d) dq[r + c] = f32_to_bf16(acc[i] * scale);
    }
}

/// dk, dv [B, T, nkv, d] (overwritten), each summed over the nh / nkv query heads of its group.
/// One warp per (key row, kv head). Launch: blockDim.x = 128, gridDim = (ceil(T / 4), nkv, B).
extern "C" __global__ void __launch_bounds__(128) flash_attention_backward_dkdv(
    bf16* __restrict__ dk, bf16* __restrict__ dv, const bf16* __restrict__ q, const bf16* __restrict__ k,
    const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse,
    const float* __restrict__ Dsum, int B, int T, int nh, int nkv, int d, float scale)
{
    __shared__ float ks[ATT_WARPS][ATT_MAX_D];
    __shared__ float vs[ATT_WARPS][ATT_MAX_D];
    if (d > ATT_MAX_D || (d & 1)) __trap();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int j = blockIdx.x * ATT_WARPS + warp, g = blockIdx.y, b = blockIdx.z;
    if (j >= T) return;
    const int group = nh / nkv;
    const i64 r = kv_row(b, j, g, T, nkv, d);
    for (int c = lane; c < d; c += 32) { ks[warp][c] = bf16_to_f32(k[r + c]); vs[warp][c] = bf16_to_f32(v[r + c]); }
    __syncwarp();

    float dk_acc[ATT_DIMS_PER_LANE], dv_acc[ATT_DIMS_PER_LANE];
    for (int i = 0; i < ATT_DIMS_PER_LANE; i++) { dk_acc[i] = 0.0f; dv_acc[i] = 0.0f; }
    for (int h = g * group; h < (g + 1) * group; h++)
    {
        const float* lse_h = lse + ((i64)b * nh + h) * T;
        const float* D_h = Dsum + ((i64)b * nh + h) * T;
        for (int i0 = j; i0 < T; i0 += 32)   // queries that see key j: t >= j
        {
            const int t = i0 + lane;
            float p = 0.0f, ds = 0.0f;
            if (t < T)
            {
                const i64 qr = q_row(b, t, h, T, nh, d);
                p = expf(scale * dot_row(ks[warp], q + qr, d) - lse_h[t]);
                const float dp = dot_row(vs[warp], dout + qr, d);
                ds = p * (dp - D_h[t]);
            }
            const int span = min(32, T - i0);
            for (int ii = 0; ii < span; ii++)
            {
                const float pi = __shfl_sync(TP_FULL_MASK, p, ii), dsi = __shfl_sync(TP_FULL_MASK, ds, ii);
                const i64 qr = q_row(b, i0 + ii, h, T, nh, d);
#pragma unroll
                for (int i = 0; i < ATT_DIMS_PER_LANE; i++)
                {
                    const int c = lane + 32 * i;
                    if (c < d)
                    {
                        dv_acc[i] += pi * bf16_to_f32(dout[qr + c]);
                        dk_acc[i] += dsi * bf16_to_f32(q[qr + c]);
                    }
                }
            }
        }
    }
#pragma unroll
    for (int i = 0; i < ATT_DIMS_PER_LANE; i++)
    {
        const int c = lane + 32 * i;
        if (c < d) { dk[r + c] = f32_to_bf16(dk_acc[i] * scale); dv[r + c] = f32_to_bf16(dv_acc[i]); }
    }
}
