// Optimizer steps on fp32 master weights, and the global gradient norm for clipping.
// A trainable parameter lives as an fp32 master copy (param), its fp32 gradient (grad) and, when the
// forward pass reads bf16, a bf16 copy refreshed by the step (param_bf16). Mirrors the CPU
// optimizer (Training/). Contracts in kernels/README.md.
//
// Gradient clipping without a host round trip: global_norm_squared accumulates per-block partial
// sums of squares over every gradient tensor, global_norm_finalize turns them into the norm and the
// clip coefficient min(1, max_norm / (norm + 1e-6)) in device memory, and the step kernels read that
// coefficient through `grad_scale` (nullable: 1).
#include "prelude.cuh"

#define GRID_STRIDE_START ((i64)blockIdx.x * blockDim.x + threadIdx.x)
#define GRID_STRIDE ((i64)gridDim.x * blockDim.x)

/// AdamW, PyTorch's formulation (torch.optim.AdamW, amsgrad off):
///   g = grad * grad_scale
///   param *= 1 - lr * weight_decay                      (decoupled weight decay)
///   m = beta1 m + (1 - beta1) g ;  v = beta2 v + (1 - beta2) g^2
///   param -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
/// step counts from 1. param_bf16 (nullable) receives bf16(param). All arrays [n]; grad is not modified.
/// Launch: grid-stride, any 1-D launch (blockDim 256 recommended).
extern "C" __global__ void adamw_step(float* __restrict__ param, bf16* __restrict__ param_bf16, const float* __restrict__ grad,
                                      float* __restrict__ m, float* __restrict__ v, i64 n,
                                      float lr, float beta1, float beta2, float eps, float weight_decay, int step,
                                      const float* __restrict__ grad_scale)
{
    const float scale = grad_scale ? *grad_scale : 1.0f;
    const float bias1 = (float)(1.0 - pow((double)beta1, (double)step));
    const float bias2_sqrt = (float)sqrt(1.0 - pow((double)beta2, (double)step));
    const float step_size = lr / bias1;
    const float decay = 1.0f - lr * weight_decay;
    for (i64 i = GRID_STRIDE_START; i < n; i += GRID_STRIDE)
    {
        const float g = grad[i] * scale;
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float p = param[i] * decay - step_size * mi / (sqrtf(vi) / bias2_sqrt + eps);
        param[i] = p;
        if (param_bf16) param_bf16[i] = f32_to_bf16(p);
    }
}

/// Plain SGD with L2 weight decay (torch.optim.SGD without momentum):
///   param -= lr * (grad * grad_scale + weight_decay * param)
/// param_bf16 (nullable) receives bf16(param). Launch as adamw_step.
extern "C" __global__ void sgd_step(float* __restrict__ param, bf16* __restrict__ param_bf16, const float* __restrict__ grad,
                                    i64 n, float lr, float weight_decay, const float* __restrict__ grad_scale)
{
    const float scale = grad_scale ? *grad_scale : 1.0f;
    for (i64 i = GRID_STRIDE_START; i < n; i += GRID_STRIDE)
    {
        const float p = param[i] - lr * (grad[i] * scale + weight_decay * param[i]);
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

/// norm[0] = sqrt(sum of partial[0..count)); clip_scale[0] (nullable) = min(1, max_norm / (norm + 1e-6))
/// as torch.nn.utils.clip_grad_norm_, or 1 when max_norm <= 0 (no clipping). A non-finite norm gives a
/// NaN clip_scale, so a step taken with it poisons the parameters visibly; the host should read norm and
/// skip such a step. Launch: one block, blockDim.x a multiple of 32, at most 1024.
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
            float s = 1.0f;
            if (!(total <= 3.402823466e38f)) s = TP_NAN;   // inf or NaN
            else if (max_norm > 0.0f) s = fminf(1.0f, max_norm / (total + 1e-6f));
            clip_scale[0] = s;
        }
    }
}
