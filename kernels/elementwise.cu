// Element-wise helpers and small reductions: dtype casts, adds, products, bias add and its backward (column
// sums), in-place scaling, and a one-block sum. Contracts in kernels/README.md.
//
// Flat kernels use grid-stride loops, so any 1-D launch covers all n elements; they take the
// 16-byte vector path (8 bf16 / 4 fp32 per access) when every pointer is 16-byte aligned, and fall
// back to scalar accesses otherwise.
#include "prelude.cuh"

#define GRID_STRIDE_START ((i64)blockIdx.x * blockDim.x + threadIdx.x)
#define GRID_STRIDE ((i64)gridDim.x * blockDim.x)

/// out[i] = (float)in[i]
extern "C" __global__ void cast_bf16_to_f32(float* __restrict__ out, const bf16* __restrict__ in, i64 n)
{
    i64 done = 0;
    if (tp_aligned(out, 16) && tp_aligned(in, 16))
    {
        const i64 vectors = n / 8;
        for (i64 v = GRID_STRIDE_START; v < vectors; v += GRID_STRIDE)
        {
            float x[8];
            load_bf16x8(in + v * 8, x);
            float4* o = reinterpret_cast<float4*>(out + v * 8);
            float4 lo, hi;
            lo.x = x[0]; lo.y = x[1]; lo.z = x[2]; lo.w = x[3];
            hi.x = x[4]; hi.y = x[5]; hi.z = x[6]; hi.w = x[7];
            o[0] = lo; o[1] = hi;
        }
        done = vectors * 8;
    }
    for (i64 i = done + GRID_STRIDE_START; i < n; i += GRID_STRIDE) out[i] = bf16_to_f32(in[i]);
}

/// out[i] = bf16(in[i]), round to nearest even.
extern "C" __global__ void cast_f32_to_bf16(bf16* __restrict__ out, const float* __restrict__ in, i64 n)
{
    i64 done = 0;
    if (tp_aligned(out, 16) && tp_aligned(in, 16))
    {
        const i64 vectors = n / 8;
        for (i64 v = GRID_STRIDE_START; v < vectors; v += GRID_STRIDE)
        {
            const float4* p = reinterpret_cast<const float4*>(in + v * 8);
            const float4 lo = p[0], hi = p[1];
            const float x[8] = { lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w };
            store_bf16x8(out + v * 8, x);
        }
        done = vectors * 8;
    }
    for (i64 i = done + GRID_STRIDE_START; i < n; i += GRID_STRIDE) out[i] = f32_to_bf16(in[i]);
}

/// out[i] = bf16(a[i] + b[i]) (sum in fp32, one rounding). out may alias a or b: each element is read
/// and written by the same thread.
extern "C" __global__ void add_bf16(bf16* out, const bf16* a, const bf16* b, i64 n)
{
    i64 done = 0;
    if (tp_aligned(out, 16) && tp_aligned(a, 16) && tp_aligned(b, 16))
    {
        const i64 vectors = n / 8;
        for (i64 v = GRID_STRIDE_START; v < vectors; v += GRID_STRIDE)
        {
            float x[8], y[8];
            load_bf16x8(a + v * 8, x);
            load_bf16x8(b + v * 8, y);
#pragma unroll
            for (int k = 0; k < 8; k++) x[k] += y[k];
            store_bf16x8(out + v * 8, x);
        }
        done = vectors * 8;
    }
    for (i64 i = done + GRID_STRIDE_START; i < n; i += GRID_STRIDE)
        out[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

/// out[i] = bf16(a[i] * b[i]) (product in fp32, one rounding). out may alias a or b. With b a 0/1
/// mask the product is exact: this applies an explicit Trans-PEFT mask (one given as data rather than
/// drawn from the Philox stream) to the SwiGLU activation and to its incoming gradient.
extern "C" __global__ void mul_bf16(bf16* out, const bf16* a, const bf16* b, i64 n)
{
    i64 done = 0;
    if (tp_aligned(out, 16) && tp_aligned(a, 16) && tp_aligned(b, 16))
    {
        const i64 vectors = n / 8;
        for (i64 v = GRID_STRIDE_START; v < vectors; v += GRID_STRIDE)
        {
            float x[8], y[8];
            load_bf16x8(a + v * 8, x);
            load_bf16x8(b + v * 8, y);
#pragma unroll
            for (int k = 0; k < 8; k++) x[k] *= y[k];
            store_bf16x8(out + v * 8, x);
        }
        done = vectors * 8;
    }
    for (i64 i = done + GRID_STRIDE_START; i < n; i += GRID_STRIDE)
        out[i] = f32_to_bf16(bf16_to_f32(a[i]) * bf16_to_f32(b[i]));
}

/// y[r, c] = bf16(y[r, c] + bias[c]) for y [rows, cols] row-major.
extern "C" __global__ void bias_add_bf16(bf16* y, const bf16* __restrict__ bias, int rows, int cols)
{
    const i64 n = (i64)rows * cols;
    for (i64 i = GRID_STRIDE_START; i < n; i += GRID_STRIDE)
        y[i] = f32_to_bf16(bf16_to_f32(y[i]) + bf16_to_f32(bias[i % cols]));
}

/// dst[c] += sum over r of src[r, c] (fp32), for src [rows, cols] bf16: the bias gradient.
/// Launch: blockDim (32, Y) with Y in 1..32 (16 recommended), gridDim.x = ceil(cols / 32).
/// Thread (x, y) sums rows y, y+Y, ... of column 32*blockIdx.x + x, then the Y partial sums are added
/// in a fixed order: deterministic, no atomics.
extern "C" __global__ void column_sum_bf16(float* __restrict__ dst, const bf16* __restrict__ src, int rows, int cols)
{
    __shared__ float partial[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < cols)
        for (int r = threadIdx.y; r < rows; r += blockDim.y) acc += bf16_to_f32(src[(i64)r * cols + c]);
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols)
    {
        float total = 0.0f;
        for (int y = 0; y < (int)blockDim.y; y++) total += partial[y][threadIdx.x];
        dst[c] += total;
    }
}

/// out[0] = scale * sum(in[0..n)), one block (blockDim.x a multiple of 32, at most 1024, gridDim 1).
/// Fixed reduction order: deterministic. Used to total the per-row losses.
extern "C" __global__ void reduce_sum_f32(float* __restrict__ out, const float* __restrict__ in, i64 n, float scale)
{
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) acc += in[i];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) out[0] = acc * scale;
}

/// KV cache append: cache[b, pos + t, :] = src[b, t, :] for t < Tq, with cache [B, Tcap, row] and
/// src [B, Tq, row] bf16 (row = nkv * head_dim). The new keys are roped (rope_forward with
/// pos_offset = pos) before or after the copy; pos + Tq <= Tcap. Grid-stride, any 1-D launch.
extern "C" __global__ void kv_cache_write(bf16* __restrict__ cache, const bf16* __restrict__ src,
                                          int B, int Tq, int Tcap, int pos, int row)
{
    const i64 n = (i64)B * Tq * row;
    for (i64 i = GRID_STRIDE_START; i < n; i += GRID_STRIDE)
    {
        const int c = (int)(i % row);
        const i64 bt = i / row;
        const int t = (int)(bt % Tq), b = (int)(bt / Tq);
        cache[((i64)b * Tcap + pos + t) * row + c] = src[i];
    }
}
