// LoRA with dropout on the adapter's input (PEFT: y = x W^T + scaling * (dropout(x) A^T) B^T).
//
// The dropout mask is never stored: keep = 1 unless the Philox stream fires for element
// e = row * in + col of x [N, in], tag LoRA dropout, lane = layer * 8 + projection
// (Projection: Q=0 K=1 V=2 O=3 Gate=4 Up=5 Down=6), and kept values are scaled by 1 / (1 - p).
// The dropped input xd = bf16(x * keep / (1 - p)) is the same value in every kernel here. p is the
// module's dropout (a constant of the adapter); the stream comes from the step's StepParams in device
// memory, so a captured graph replays for every step. A null StepParams means no dropout (p ignored).
//
// Forward:  t = xd A^T               lora_dropout_shrink (this file), t [N, r] bf16
//           y += scaling * t B^T      cuBLAS GemmEx, beta = 1 (accumulates onto the base output)
// Backward: dt = scaling * dy B       cuBLAS
//           dB += scaling * dy^T t    cuBLAS (fp32 output, beta = 1)
//           xd = lora_dropout_apply(x)            (accumulate = 0, into scratch)
//           dA += dt^T xd             cuBLAS (fp32 output, beta = 1)
//           g = dt A                  cuBLAS into scratch [N, in]
//           dx += g * keep / (1 - p)  lora_dropout_apply(dx, g, accumulate = 1)
// With p = 0 the mask is the identity: xd = x, and dx += dt A is a cuBLAS GEMM with beta = 1.
// Mirrors the LoRA path of Compute/Cpu/CpuLinear.cs (same order of GEMMs, same mask).
#include "prelude.cuh"

TP_DEVICE u32 lora_lane(u32 layer, u32 projection) { return layer * 8u + projection; }

/// The kept, rescaled value of one input element (fp32, before the bf16 rounding).
TP_DEVICE float dropout_value(float x, float u, float p, float inv_keep) { return u < p ? 0.0f : x * inv_keep; }

/// out = bf16((accumulate ? out : 0) + x * keep / (1 - p)), for out, x [N, in] bf16. With accumulate = 0
/// it produces the dropped input xd for dA; with accumulate = 1 it adds the masked gradient dt A into
/// dx. p = 0 copies (or adds) x unchanged and draws nothing. N * in must be below 2^32.
/// Launch: grid-stride over ceil(N*in / 4) quads, any 1-D launch (blockDim 256 recommended).
extern "C" __global__ void lora_dropout_apply(bf16* out, const bf16* x, int N, int in, float p,
                                              const StepParams* __restrict__ step, u32 layer, u32 projection, int accumulate)
{
    const i64 n = (i64)N * in;
    const i64 quads = (n + 3) / 4;
    if (!step) p = 0.0f;
    const RandomStream rs = step_dropout_stream(step);
    const u32 lane = lora_lane(layer, projection);
    const float inv_keep = 1.0f / (1.0f - p);
    for (i64 q = (i64)blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += (i64)gridDim.x * blockDim.x)
    {
        float u[4] = { 1.0f, 1.0f, 1.0f, 1.0f };
        if (p > 0.0f) stream_uniform4(rs, TP_TAG_LORA_DROPOUT, lane, (u32)q, u);
        for (int k = 0; k < 4; k++)
        {
            const i64 e = q * 4 + k;
            if (e >= n) break;
            float v = p > 0.0f ? dropout_value(bf16_to_f32(x[e]), u[k], p, inv_keep) : bf16_to_f32(x[e]);
            if (accumulate) v += bf16_to_f32(out[e]);
            out[e] = f32_to_bf16(v);
        }
    }
}

// ---- lora_dropout_shrink: t = xd A^T on tensor cores -------------------------------------------
// Block: 4 warps, 64 rows of x (16 per warp) times 64 rank columns (blockIdx.y selects which 64).
// The k loop walks `in` 32 columns at a time: the x tile is loaded through registers (the dropout
// mask is applied on the way into shared memory), the A tile likewise, then each warp runs
// mma.m16n8k16 over its 16 rows. Row stride 40 bf16 (80 bytes) keeps ldmatrix conflict-free.

#define SHRINK_ROWS 64
#define SHRINK_RANKS 64
#define SHRINK_K 32
#define SHRINK_STRIDE (SHRINK_K + 8)

/// Load the [64 x 32] x tile starting at (row0, k0) into shared memory as bf16(xd), zero outside the
/// matrix. Each thread handles 4 quads of 4 consecutive columns; with in % 4 == 0 a quad is one
/// Philox output quad, otherwise each element draws its own.
TP_DEVICE void shrink_load_x(bf16 (*xs)[SHRINK_STRIDE], const bf16* x, int N, int in, int row0, int k0,
                             float p, float inv_keep, const RandomStream& rs, u32 lane)
{
    const bool quad_aligned = (in & 3) == 0;
    const bool vec = quad_aligned && tp_aligned(x, 8);
    for (int w = threadIdx.x; w < SHRINK_ROWS * (SHRINK_K / 4); w += blockDim.x)
    {
        const int r = w / (SHRINK_K / 4), c = (w % (SHRINK_K / 4)) * 4;
        const int row = row0 + r, col = k0 + c;
        float v[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
        if (row < N)
        {
            const i64 e0 = (i64)row * in + col;
            if (vec && col + 3 < in)
            {
                const uint2 q = *reinterpret_cast<const uint2*>(x + e0);
                v[0] = bf16x2_lo(q.x); v[1] = bf16x2_hi(q.x); v[2] = bf16x2_lo(q.y); v[3] = bf16x2_hi(q.y);
            }
            else
                for (int k = 0; k < 4; k++) if (col + k < in) v[k] = bf16_to_f32(x[e0 + k]);
            if (p > 0.0f)
            {
                float u[4];
                if (quad_aligned) stream_uniform4(rs, TP_TAG_LORA_DROPOUT, lane, (u32)(e0 >> 2), u);
                else for (int k = 0; k < 4; k++) u[k] = stream_uniform(rs, TP_TAG_LORA_DROPOUT, lane, (u32)(e0 + k));
                for (int k = 0; k < 4; k++) v[k] = dropout_value(v[k], u[k], p, inv_keep);
            }
        }
        for (int k = 0; k < 4; k++) xs[r][c + k] = f32_to_bf16(v[k]);
    }
}

/// t[N, r] = bf16(xd A^T), A [r, in] bf16, fp32 accumulation. p = 0 is the plain x A^T.
/// Any N, in, r >= 1; N * in below 2^32.
/// Launch: blockDim.x = 128 (exactly), gridDim = (ceil(N / 64), ceil(r / 64)); static shared memory
/// 10 KiB. Needs sm_80 (mma.sync bf16).
extern "C" __global__ void __launch_bounds__(128) lora_dropout_shrink(
    bf16* __restrict__ t, const bf16* __restrict__ x, const bf16* __restrict__ A, int N, int in, int r, float p,
    const StepParams* __restrict__ step, u32 layer, u32 projection)
{
    __shared__ TP_ALIGN(16) bf16 xs[SHRINK_ROWS][SHRINK_STRIDE];
    __shared__ TP_ALIGN(16) bf16 as[SHRINK_RANKS][SHRINK_STRIDE];
    const int warp = threadIdx.x >> 5, l = threadIdx.x & 31;
    const int row0 = blockIdx.x * SHRINK_ROWS, rank0 = blockIdx.y * SHRINK_RANKS;
    const int ranks = min(SHRINK_RANKS, r - rank0);
    const int pairs = (ranks + 15) / 16;   // n-tiles are handled two at a time (one ldmatrix.x4)
    if (!step) p = 0.0f;
    const RandomStream rs = step_dropout_stream(step);
    const u32 lane = lora_lane(layer, projection);
    const float inv_keep = 1.0f / (1.0f - p);

    float acc[SHRINK_RANKS / 8][4];
    zero_fragments(acc);

    for (int k0 = 0; k0 < in; k0 += SHRINK_K)
    {
        shrink_load_x(xs, x, N, in, row0, k0, p, inv_keep, rs, lane);
        for (int w = threadIdx.x; w < SHRINK_RANKS * SHRINK_K; w += blockDim.x)
        {
            const int rr = w / SHRINK_K, c = w % SHRINK_K;
            const int rank = rank0 + rr, col = k0 + c;
            as[rr][c] = rank < r && col < in ? A[(i64)rank * in + col] : f32_to_bf16(0.0f);
        }
        __syncthreads();
#pragma unroll
        for (int ks = 0; ks < SHRINK_K / 16; ks++)
        {
            u32 a[4];
            ldmatrix_x4(a, &xs[warp * 16 + (l & 15)][ks * 16 + (l >> 4) * 8]);
#pragma unroll
            for (int np = 0; np < SHRINK_RANKS / 16; np++)
            {
                if (np >= pairs) break;
                u32 b[4];
                ldmatrix_x4(b, &as[np * 16 + (l >> 4) * 8 + (l & 7)][ks * 16 + ((l >> 3) & 1) * 8]);
                const u32 b0[2] = { b[0], b[1] }, b1[2] = { b[2], b[3] };
                mma_bf16_16816(acc[2 * np], a, b0, acc[2 * np]);
                mma_bf16_16816(acc[2 * np + 1], a, b1, acc[2 * np + 1]);
            }
        }
        __syncthreads();
    }

    const int g = l >> 2, tq = l & 3;
#pragma unroll
    for (int nt = 0; nt < SHRINK_RANKS / 8; nt++)
    {
        const int col = rank0 + nt * 8 + tq * 2;
#pragma unroll
        for (int half = 0; half < 2; half++)
        {
            const int row = row0 + warp * 16 + g + half * 8;
            if (row >= N) continue;
            bf16* dst = t + (i64)row * r;
            if (col < r) dst[col] = f32_to_bf16(acc[nt][half * 2]);
            if (col + 1 < r) dst[col + 1] = f32_to_bf16(acc[nt][half * 2 + 1]);
        }
    }
}
