// Optimizer steps on fp32 master weights, and the global gradient norm for clipping.
// A trainable parameter lives as an fp32 master copy (param), its fp32 gradient (grad) and, when the
// forward pass reads bf16, a bf16 copy refreshed by the step (param_bf16). Mirrors the CPU
// optimizers (Training/AdamW.cs, GradientClipping.cs; SGD stays a host optimizer).
// Contracts in kernels/README.md.
//
// Gradient clipping without a host round trip: global_norm_squared accumulates per-block partial
// sums of squares over every gradient tensor, global_norm_finalize turns them into the norm and the
// clip coefficient in device memory, and the step kernels read that coefficient through `grad_scale`
// (nullable: 1).
#include "prelude.cuh"

#define GRID_STRIDE_START ((i64)blockIdx.x * blockDim.x + threadIdx.x)
#define GRID_STRIDE ((i64)gridDim.x * blockDim.x)

/// AdamW in PyTorch's order, exactly as Training/AdamW.cs (scalars in fp64, elements in fp32):
///   g = grad * grad_scale
///   m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g^2
///   param = param * (1 - lr * weight_decay) - (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
/// step counts from 1. weight_decay is 0 for parameters that do not decay (Optimizer.Decays: 1-D ones).
/// param_bf16 (nullable) receives bf16(param). All arrays [n]; grad is not modified.
/// Launch: grid-stride, any 1-D launch (blockDim 256 recommended).
extern "C" __global__ void adamw_step(float* __restrict__ param, bf16* __restrict__ param_bf16, const float* __restrict__ grad,
                                      float* __restrict__ m, float* __restrict__ v, i64 n,
                                      float lr, float beta1, float beta2, float eps, float weight_decay, int step,
                                      const float* __restrict__ grad_scale)
{
    const float scale = grad_scale ? *grad_scale : 1.0f;
    const double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
    const float step_size = (float)((double)lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    const float decay = (float)(1.0 - (double)lr * (double)weight_decay);
    const float one_minus_b1 = (float)(1.0 - (double)beta1), one_minus_b2 = (float)(1.0 - (double)beta2);
    for (i64 i = GRID_STRIDE_START; i < n; i += GRID_STRIDE)
    {
        const float g = grad[i] * scale;
        const float mi = beta1 * m[i] + one_minus_b1 * g;
        const float vi = beta2 * v[i] + one_minus_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        const float p = param[i] * decay - step_size * (mi / (sqrtf(vi) * inv_sqrt_bc2 + eps));
        param[i] = p;
        if (param_bf16) param_bf16[i] = f32_to_bf16(p);
    }
}

/// partial[blockIdx.x] = (accumulate ? partial[blockIdx.x] : 0) + sum of x[i]^2 over the elements this
/// block visits (grid-stride). Call it once per gradient tensor with the SAME launch configuration,
/// accumulate = 0 for the first tensor and 1 after, then global_norm_finalize with count = gridDim.x.
/// A fixed launch fixes the summation order: the norm is deterministic.
/// Launch: gridDim.x = G (fixed, e.g. 2 x SM count), blockDim.x a multiple of 32, at most 1024.
extern "C" __global__ void global_norm_squared(float* __restrict__ partial, const float* __restrict__ x, i64 n, int accumulate)
{
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (i64 i = GRID_STRIDE_START; i < n; i += GRID_STRIDE) acc += x[i] * x[i];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = accumulate ? partial[blockIdx.x] + acc : acc;
}

/// norm[0] = sqrt(sum of partial[0..count)); clip_scale[0] (nullable) = max_norm / (norm + 1e-6) when
/// max_norm > 0 and the norm is finite and above max_norm, else 1, exactly as
/// GradientClipping.ClipGlobalNorm (a non-finite norm is the host's to detect: it reads norm[0]).
/// Launch: one block, blockDim.x a multiple of 32, at most 1024.
extern "C" __global__ void global_norm_finalize(float* __restrict__ norm, float* __restrict__ clip_scale,
                                                const float* __restrict__ partial, int count, float max_norm)
{
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0)
    {
        const float total = sqrtf(acc);
        norm[0] = total;
        if (clip_scale)
        {
            const bool finite = total <= 3.402823466e38f;   // false for inf and NaN
            clip_scale[0] = max_norm > 0.0f && finite && total > max_norm ? (float)((double)max_norm / ((double)total + 1e-6)) : 1.0f;
        }
    }
}
