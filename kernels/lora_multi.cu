// Many adapters in one batch (punica's SGMV and BGMV): every row of x [N, in] is tagged with an adapter
// slot of a device pool, or -1 for the base model alone, and gets
//     y[n] += scaling[s] * (x[n] A[s]^T) B[s]^T,   s = the row's slot.
// The pool holds every loaded adapter's module for one projection, padded to the pool's largest rank rmax
// with zero rows of A and zero columns of B, so slot s is at a fixed offset and the padding adds exact zeros:
//     A[s] = A + s * slot_stride: [rmax, in] bf16,  B[s] = B + s * slot_stride: [out, rmax] bf16,
//     scaling[s * scale_stride] fp32,  t [N, rmax] fp32 scratch.
// The strides let a pool keep each adapter's modules contiguous in its slot (every projection of every
// layer one after another, so loading an adapter is one copy): A and B then point at the module's offset
// in slot 0 and slot_stride is the slot's size in elements. A pool of one projection has slot_stride =
// rmax * in (A) or out * rmax (B) and scale_stride = 1.
// Inference only (no dropout, no gradients). Mirrors Compute/Cpu/MixedLora.cs.
//
// Two forms of the same op:
//   BGMV (decode: one token per request) indexes the pool per row through row_slot [N].
//   SGMV (prefill, or decode batches sorted by adapter) takes segments, maximal runs of rows that share a
//   slot: rows [seg_start[i], seg_start[i+1]) use seg_slot[i]. A block owns 16 rows of one segment and
//   stages the adapter's weights in shared memory once for all of them.
// Rows of slot -1 are not touched: t is not written there and y keeps the base projection's output.
// All products are fp32 FMAs (rank-side GEMMs are thin: r <= 64 typically, and memory-bound on the
// adapter weights), summed in a fixed order for a fixed launch: deterministic, no atomics.
#include "prelude.cuh"

#define MULTI_ROWS 16     // rows of a segment per SGMV block
#define MULTI_COLS 64     // ranks (shrink) or output columns (expand) per pass
#define MULTI_K 32        // depth of a staged tile
#define MULTI_THREADS 128 // SGMV block size: 16 rows x 8 column groups

/// t[n, 0..rmax) = x[n] A[s]^T for rows with s = row_slot[n] >= 0. One block per row (grid-stride over
/// rows); warp w computes ranks w, w + warps, ... as lane-strided dot products reduced with warp_sum.
/// Launch: blockDim.x multiple of 32 (128 recommended), any gridDim.x.
extern "C" __global__ void bgmv_shrink(float* t, const bf16* x, const bf16* A, const i32* row_slot,
                                       int N, int in, int rmax, i64 slot_stride)
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int n = blockIdx.x; n < N; n += gridDim.x)
    {
        const int s = row_slot[n];
        if (s < 0) continue;
        const bf16* xr = x + (i64)n * in;
        const bf16* As = A + (i64)s * slot_stride;
        for (int j = warp; j < rmax; j += warps)
        {
            const bf16* a = As + (i64)j * in;
            float acc = 0.0f;
            for (int k = lane; k < in; k += 32) acc += bf16_to_f32(xr[k]) * bf16_to_f32(a[k]);
            acc = warp_sum(acc);
            if (lane == 0) t[(i64)n * rmax + j] = acc;
        }
    }
}

/// y[n, o] = bf16(y[n, o] + scaling[s] * sum_j t[n, j] B[s, o, j]) for rows with s = row_slot[n] >= 0.
/// Grid-stride over N * out elements, any 1-D launch (blockDim 256 recommended).
extern "C" __global__ void bgmv_expand(bf16* y, const float* t, const bf16* B, const float* scaling, const i32* row_slot,
                                       int N, int out, int rmax, i64 slot_stride, int scale_stride)
{
    const i64 total = (i64)N * out;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (i64)gridDim.x * blockDim.x)
    {
        const int n = (int)(e / out), o = (int)(e % out);
        const int s = row_slot[n];
        if (s < 0) continue;
        const float* tr = t + (i64)n * rmax;
        const bf16* b = B + (i64)s * slot_stride + (i64)o * rmax;
        float acc = 0.0f;
        for (int j = 0; j < rmax; j++) acc += tr[j] * bf16_to_f32(b[j]);
        y[e] = f32_to_bf16(bf16_to_f32(y[e]) + scaling[(i64)s * scale_stride] * acc);
    }
}

/// SGMV shrink: t[n, :] = x[n] A[s]^T over segment blockIdx.y (grid-stride over its 16-row tiles through
/// blockIdx.x). Per pass of 64 ranks, the k loop stages x [16 x 32] and A [64 x 32] (fp32, rows padded by one
/// to spread shared-memory banks); thread (row = tid % 16, group = tid / 16) owns ranks group + 8i.
/// Launch: blockDim.x = 128 exactly, gridDim = (any >= 1, e.g. ceil(longest segment / 16); nseg).
/// 10.5 KiB static shared memory.
extern "C" __global__ void __launch_bounds__(MULTI_THREADS) sgmv_shrink(
    float* __restrict__ t, const bf16* __restrict__ x, const bf16* __restrict__ A, const i32* seg_start, const i32* seg_slot,
    int nseg, int in, int rmax, i64 slot_stride)
{
    __shared__ float xs[MULTI_ROWS][MULTI_K + 1];
    __shared__ float as[MULTI_COLS][MULTI_K + 1];
    const int seg = blockIdx.y;
    if (seg >= nseg) return;
    const int s = seg_slot[seg];
    if (s < 0) return;
    const int first = seg_start[seg], last = seg_start[seg + 1];
    const int row = threadIdx.x % MULTI_ROWS, group = threadIdx.x / MULTI_ROWS;
    const bf16* As = A + (i64)s * slot_stride;
    for (int row0 = first + blockIdx.x * MULTI_ROWS; row0 < last; row0 += gridDim.x * MULTI_ROWS)
        for (int rank0 = 0; rank0 < rmax; rank0 += MULTI_COLS)
        {
            float acc[MULTI_COLS / 8];
            for (int i = 0; i < MULTI_COLS / 8; i++) acc[i] = 0.0f;
            for (int k0 = 0; k0 < in; k0 += MULTI_K)
            {
                for (int w = threadIdx.x; w < MULTI_ROWS * MULTI_K; w += blockDim.x)
                {
                    const int r = w / MULTI_K, c = w % MULTI_K;
                    xs[r][c] = row0 + r < last && k0 + c < in ? bf16_to_f32(x[(i64)(row0 + r) * in + k0 + c]) : 0.0f;
                }
                for (int w = threadIdx.x; w < MULTI_COLS * MULTI_K; w += blockDim.x)
                {
                    const int j = w / MULTI_K, c = w % MULTI_K;
                    as[j][c] = rank0 + j < rmax && k0 + c < in ? bf16_to_f32(As[(i64)(rank0 + j) * in + k0 + c]) : 0.0f;
                }
                __syncthreads();
                for (int c = 0; c < MULTI_K; c++)
                {
                    const float xv = xs[row][c];
                    for (int i = 0; i < MULTI_COLS / 8; i++) acc[i] += xv * as[group + 8 * i][c];
                }
                __syncthreads();
            }
            if (row0 + row < last)
                for (int i = 0; i < MULTI_COLS / 8; i++)
                {
                    const int j = rank0 + group + 8 * i;
                    if (j < rmax) t[(i64)(row0 + row) * rmax + j] = acc[i];
                }
        }
}

/// SGMV expand: y[n, o] = bf16(y[n, o] + scaling[s] * sum_j t[n, j] B[s, o, j]) over segment blockIdx.z,
/// output columns [64 blockIdx.x, +64), rows grid-strided in 16-row tiles through blockIdx.y. The j loop stages
/// t [16 x 32] and B [64 x 32] (fp32, padded rows); thread (row = tid % 16, group = tid / 16) owns columns
/// group + 8i. Launch: blockDim.x = 128 exactly, gridDim = (ceil(out / 64), any >= 1, nseg). 10.5 KiB static
/// shared memory.
extern "C" __global__ void __launch_bounds__(MULTI_THREADS) sgmv_expand(
    bf16* __restrict__ y, const float* __restrict__ t, const bf16* __restrict__ B, const float* scaling,
    const i32* seg_start, const i32* seg_slot, int nseg, int out, int rmax, i64 slot_stride, int scale_stride)
{
    __shared__ float ts[MULTI_ROWS][MULTI_K + 1];
    __shared__ float bs[MULTI_COLS][MULTI_K + 1];
    const int seg = blockIdx.z;
    if (seg >= nseg) return;
    const int s = seg_slot[seg];
    if (s < 0) return;
    const int first = seg_start[seg], last = seg_start[seg + 1];
    const int row = threadIdx.x % MULTI_ROWS, group = threadIdx.x / MULTI_ROWS;
    const int col0 = blockIdx.x * MULTI_COLS;
    const bf16* Bs = B + (i64)s * slot_stride;
    const float scale = scaling[(i64)s * scale_stride];
    for (int row0 = first + blockIdx.y * MULTI_ROWS; row0 < last; row0 += gridDim.y * MULTI_ROWS)
    {
        float acc[MULTI_COLS / 8];
        for (int i = 0; i < MULTI_COLS / 8; i++) acc[i] = 0.0f;
        for (int j0 = 0; j0 < rmax; j0 += MULTI_K)
        {
            for (int w = threadIdx.x; w < MULTI_ROWS * MULTI_K; w += blockDim.x)
            {
                const int r = w / MULTI_K, c = w % MULTI_K;
                ts[r][c] = row0 + r < last && j0 + c < rmax ? t[(i64)(row0 + r) * rmax + j0 + c] : 0.0f;
            }
            for (int w = threadIdx.x; w < MULTI_COLS * MULTI_K; w += blockDim.x)
            {
                const int o = w / MULTI_K, c = w % MULTI_K;
                bs[o][c] = col0 + o < out && j0 + c < rmax ? bf16_to_f32(Bs[(i64)(col0 + o) * rmax + j0 + c]) : 0.0f;
            }
            __syncthreads();
            for (int c = 0; c < MULTI_K; c++)
            {
                const float tv = ts[row][c];
                for (int i = 0; i < MULTI_COLS / 8; i++) acc[i] += tv * bs[group + 8 * i][c];
            }
            __syncthreads();
        }
        if (row0 + row < last)
            for (int i = 0; i < MULTI_COLS / 8; i++)
            {
                const int o = col0 + group + 8 * i;
                if (o < out)
                {
                    bf16* p = y + (i64)(row0 + row) * out + o;
                    *p = f32_to_bf16(bf16_to_f32(*p) + scale * acc[i]);
                }
            }
    }
}
