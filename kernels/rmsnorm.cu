// RMSNorm forward and backward: y = x / sqrt(mean(x^2) + eps) * w over the last dimension.
// One warp per row: rows are at most a few thousand wide, so a warp streams a row in a few 16-byte
// accesses per lane, and the row's statistics need only warp shuffles, no shared memory.
// Mirrors Compute/Cpu/RmsNorm.cs. Contracts in kernels/README.md.
#include "prelude.cuh"

// A row is walked in 8-element (16-byte) chunks when C % 8 == 0 and the base pointers are 16-byte
// aligned (then every row is); otherwise element by element. `VEC` is 8 or 1.
template <int VEC>
TP_DEVICE void load_chunk(const bf16* p, float (&v)[8])
{
    if (VEC == 8) load_bf16x8(p, v);
    else v[0] = bf16_to_f32(*p);
}
template <int VEC>
TP_DEVICE void store_chunk(bf16* p, const float (&v)[8])
{
    if (VEC == 8) store_bf16x8(p, v);
    else *p = f32_to_bf16(v[0]);
}

/// Sum of squares of a row and the normalised output. If `y` is given, the row is x + y, rounded to
/// bf16 and stored to `residual_out` first (the fused residual add), and the norm uses that rounded
/// value, exactly what the backward pass will read back.
template <int VEC>
TP_DEVICE void rmsnorm_row(bf16* residual_out, bf16* out, float* rstd, const bf16* x, const bf16* y,
                           const bf16* weight, int row, int C, float eps)
{
    const int lane = threadIdx.x & 31;
    const i64 base = (i64)row * C;
    float sumsq = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC)
    {
        float v[8];
        load_chunk<VEC>(x + base + c, v);
        if (y)
        {
            float w[8];
            load_chunk<VEC>(y + base + c, w);
#pragma unroll
            for (int k = 0; k < VEC; k++) v[k] = round_to_bf16(v[k] + w[k]);
            store_chunk<VEC>(residual_out + base + c, v);
        }
#pragma unroll
        for (int k = 0; k < VEC; k++) sumsq += v[k] * v[k];
    }
    sumsq = warp_sum(sumsq);
    const float r = rsqrtf(sumsq / (float)C + eps);
    if (rstd && lane == 0) rstd[row] = r;
    // Second pass reads the row again (from L1/L2); with the fused add it reads the stored sum, so
    // residual_out may alias x or y.
    const bf16* h = y ? residual_out : x;
    for (int c = lane * VEC; c < C; c += 32 * VEC)
    {
        float v[8], w[8];
        load_chunk<VEC>(h + base + c, v);
        load_chunk<VEC>(weight + c, w);
#pragma unroll
        for (int k = 0; k < VEC; k++) v[k] = v[k] * r * w[k];
        store_chunk<VEC>(out + base + c, v);
    }
}

/// out = RMSNorm(inp) * weight, rstd[row] = 1 / sqrt(mean(inp[row]^2) + eps) (rstd nullable).
/// inp, out [N, C] bf16; weight [C] bf16. Launch: blockDim.x a multiple of 32 (256 recommended),
/// gridDim.x = ceil(N / (blockDim.x / 32)): one warp per row.
extern "C" __global__ void rmsnorm_forward(bf16* __restrict__ out, float* __restrict__ rstd,
                                           const bf16* __restrict__ inp, const bf16* __restrict__ weight,
                                           int N, int C, float eps)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const bool vec = (C % 8) == 0 && tp_aligned(out, 16) && tp_aligned(inp, 16) && tp_aligned(weight, 16);
    if (vec) rmsnorm_row<8>(nullptr, out, rstd, inp, nullptr, weight, row, C, eps);
    else rmsnorm_row<1>(nullptr, out, rstd, inp, nullptr, weight, row, C, eps);
}

/// residual_out = bf16(x + y); out = RMSNorm(residual_out) * weight; rstd as rmsnorm_forward.
/// residual_out may alias x or y (in-place update of the residual stream). Same launch as
/// rmsnorm_forward.
extern "C" __global__ void rmsnorm_residual_forward(bf16* residual_out, bf16* __restrict__ out, float* __restrict__ rstd,
                                                    const bf16* x, const bf16* y, const bf16* __restrict__ weight,
                                                    int N, int C, float eps)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const bool vec = (C % 8) == 0 && tp_aligned(residual_out, 16) && tp_aligned(out, 16) && tp_aligned(x, 16)
                  && tp_aligned(y, 16) && tp_aligned(weight, 16);
    if (vec) rmsnorm_row<8>(residual_out, out, rstd, x, y, weight, row, C, eps);
    else rmsnorm_row<1>(residual_out, out, rstd, x, y, weight, row, C, eps);
}

template <int VEC>
TP_DEVICE void rmsnorm_backward_row(bf16* dinp, const bf16* dout, const bf16* inp, const bf16* weight,
                                    float r, int row, int C, bool accumulate)
{
    const int lane = threadIdx.x & 31;
    const i64 base = (i64)row * C;
    // y = x * r * w with r = (mean(x^2) + eps)^-1/2, so dx = r * (dy * w) - x * r^3 / C * sum(dy * w * x).
    float dot = 0.0f;
    for (int c = lane * VEC; c < C; c += 32 * VEC)
    {
        float dy[8], x[8], w[8];
        load_chunk<VEC>(dout + base + c, dy);
        load_chunk<VEC>(inp + base + c, x);
        load_chunk<VEC>(weight + c, w);
#pragma unroll
        for (int k = 0; k < VEC; k++) dot += dy[k] * w[k] * x[k];
    }
    dot = warp_sum(dot);
    const float coef = dot * r * r * r / (float)C;
    for (int c = lane * VEC; c < C; c += 32 * VEC)
    {
        float dy[8], x[8], w[8], d[8];
        load_chunk<VEC>(dout + base + c, dy);
        load_chunk<VEC>(inp + base + c, x);
        load_chunk<VEC>(weight + c, w);
        if (accumulate) load_chunk<VEC>(dinp + base + c, d);
#pragma unroll
        for (int k = 0; k < VEC; k++)
        {
            const float g = r * dy[k] * w[k] - x[k] * coef;
            d[k] = accumulate ? d[k] + g : g;
        }
        store_chunk<VEC>(dinp + base + c, d);
    }
}

/// dinp (+)= dRMSNorm/dinp · dout, for inp, dout, dinp [N, C] bf16, weight [C] bf16, rstd [N] fp32 from
/// the forward. accumulate != 0 adds into dinp (the residual stream's gradient), 0 overwrites it.
/// The weight gradient is a separate kernel (rmsnorm_backward_weight) so a frozen weight costs
/// nothing and the column reduction stays deterministic. Same launch as rmsnorm_forward.
extern "C" __global__ void rmsnorm_backward(bf16* dinp, const bf16* __restrict__ dout, const bf16* __restrict__ inp,
                                            const bf16* __restrict__ weight, const float* __restrict__ rstd,
                                            int N, int C, int accumulate)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const float r = rstd[row];
    const bool vec = (C % 8) == 0 && tp_aligned(dinp, 16) && tp_aligned(dout, 16) && tp_aligned(inp, 16)
                  && tp_aligned(weight, 16);
    if (vec) rmsnorm_backward_row<8>(dinp, dout, inp, weight, r, row, C, accumulate != 0);
    else rmsnorm_backward_row<1>(dinp, dout, inp, weight, r, row, C, accumulate != 0);
}

/// dweight[c] += sum over rows n of dout[n, c] * inp[n, c] * rstd[n] (fp32).
/// Launch: blockDim (32, Y) with Y in 1..32 (16 recommended), gridDim.x = ceil(C / 32); fixed-order
/// column reduction as column_sum_bf16: deterministic, no atomics.
extern "C" __global__ void rmsnorm_backward_weight(float* __restrict__ dweight, const bf16* __restrict__ dout,
                                                   const bf16* __restrict__ inp, const float* __restrict__ rstd,
                                                   int N, int C)
{
    __shared__ float partial[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < C)
        for (int n = threadIdx.y; n < N; n += blockDim.y)
        {
            const i64 i = (i64)n * C + c;
            acc += bf16_to_f32(dout[i]) * bf16_to_f32(inp[i]) * rstd[n];
        }
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < C)
    {
        float total = 0.0f;
        for (int y = 0; y < (int)blockDim.y; y++) total += partial[y][threadIdx.x];
        dweight[c] += total;
    }
}
