// The per-token decode step of a KV-cached model, for N rows that may belong to different requests: every
// value that changes from token to token (each row's cache slot and position) is read from DEVICE buffers,
// so one launch sequence serves every step of a given N and can be captured once as a CUDA graph and
// replayed. The KV cache is a slot arena, one per layer for K and one for V:
//     cache [S, cap, nkv, d] bf16,  slot s = one sequence, positions 0 .. cap-1.
// Row n of a step writes its new key/value at cache[slot[n], pos[n]] and attends to keys 0 .. pos[n] of its
// slot. The math is rope.cu's and attention.cu's, through the same prelude.cuh helpers (rope_rotate_pair,
// attention_row): a decode row gets the bits flash_attention_forward gives the last query of a prefill.
// Mirrors Compute/Cpu/Rope.cs (per-row position) and Compute/Cpu/Attention.cs (one query, qPos0 = pos).
#include "prelude.cuh"

#define DECODE_WARPS 4
#define GRID_STRIDE_START ((i64)blockIdx.x * blockDim.x + threadIdx.x)
#define GRID_STRIDE ((i64)gridDim.x * blockDim.x)

/// x [N, heads, d] bf16 rotated in place, row n by pos[n] * inv_freq (fp64 [d/2]). Grid-stride over the
/// N * heads * d/2 pairs: any 1-D launch.
extern "C" __global__ void rope_rows(bf16* x, const double* __restrict__ inv_freq, const i32* __restrict__ pos, int N, int heads, int d)
{
    const int half = d >> 1;
    const i64 pairs = (i64)N * heads * half;
    for (i64 p = GRID_STRIDE_START; p < pairs; p += GRID_STRIDE)
    {
        const int j = (int)(p % half);
        const i64 row = p / half;               // n * heads + h
        const int n = (int)(row / heads);
        rope_rotate_pair(x + row * d, j, half, pos[n], inv_freq[j], 1.0f);
    }
}

/// k_cache[slot[n], pos[n], :] = k[n, :] and likewise v, for k, v [N, row] and caches [S, cap, row] bf16
/// (row = nkv * d; one layer). Grid-stride over N * row: any 1-D launch.
extern "C" __global__ void kv_append(bf16* __restrict__ k_cache, bf16* __restrict__ v_cache, const bf16* __restrict__ k,
                                     const bf16* __restrict__ v, const i32* __restrict__ slot, const i32* __restrict__ pos,
                                     int N, int cap, int row)
{
    const i64 n_elems = (i64)N * row;
    for (i64 i = GRID_STRIDE_START; i < n_elems; i += GRID_STRIDE)
    {
        const int n = (int)(i / row), c = (int)(i % row);
        const i64 at = ((i64)slot[n] * cap + pos[n]) * row + c;
        k_cache[at] = k[i];
        v_cache[at] = v[i];
    }
}

/// out[n, h, :] = softmax(scale q[n, h] k^T) v over keys 0 .. pos[n] of slot slot[n], GQA (query head h reads
/// kv head h / (nh / nkv)); q, out [N, nh, d], caches [S, cap, nkv, d]. Any even d <= 256. Launch:
/// blockDim.x = 128 (4 warps, one row each), gridDim = (ceil(N / 4), nh).
extern "C" __global__ void __launch_bounds__(128) decode_attention(
    bf16* __restrict__ out, const bf16* __restrict__ q, const bf16* __restrict__ k_cache, const bf16* __restrict__ v_cache,
    const i32* __restrict__ slot, const i32* __restrict__ pos, int N, int cap, int nh, int nkv, int d, float scale)
{
    __shared__ float qs[DECODE_WARPS][ATT_MAX_D];
    if (d > ATT_MAX_D || (d & 1)) __trap();   // outside this kernel's contract: fail loudly
    const int warp = threadIdx.x >> 5;
    const int n = blockIdx.x * DECODE_WARPS + warp, h = blockIdx.y;
    if (n >= N) return;                       // whole warp; no block-wide barrier follows
    const int g = h / (nh / nkv);
    const i64 row = ((i64)n * nh + h) * d;
    const i64 base = (i64)slot[n] * cap * nkv * d + (i64)g * d;
    attention_row(out + row, nullptr, qs[warp], q + row, k_cache + base, v_cache + base, (i64)nkv * d, pos[n], d, scale);
}
