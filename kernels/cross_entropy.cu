// Fused causal-LM cross-entropy: loss and logits gradient in one kernel, written over the logits in
// place, never a separate probability matrix. Plus the row argmax for greedy decoding.
// Mirrors Compute/Cpu/CrossEntropy.cs. Contracts in kernels/README.md.
//
// Logits are bf16 (the lm_head GEMM's output; at V = 152k and 16k rows an fp32 copy would be 10 GB)
// or fp32 (cross_entropy_fused_f32, for small evaluations and parity checks). Either way every
// statistic is fp32: a running (max, sum of exp) pair per thread, merged across the block.
#include "prelude.cuh"

#define IGNORE_INDEX (-100)

/// Merge two online-softmax states (m, s): s is the sum of exp(x - m) over the values seen.
TP_DEVICE void softmax_merge(float& m, float& s, float m2, float s2)
{
    const float mn = fmaxf(m, m2);
    if (mn == -TP_INFINITY) { s += s2; return; }   // both empty (s stays 0, or NaN if a NaN was seen)
    s = s * expf(m - mn) + s2 * expf(m2 - mn);
    m = mn;
}

/// Add one value to an online-softmax state: one exp per value (the rescale only when the max moves).
/// A NaN value makes the sum NaN, so a broken row cannot produce a finite loss.
TP_DEVICE void softmax_add(float& m, float& s, float x)
{
    if (x > m) { s = s * expf(m - x) + 1.0f; m = x; }
    else if (x != -TP_INFINITY) s += expf(x - m);
}

/// Row chunk loads: 8 bf16 or 4 fp32 (16 bytes) per access on the vector path.
TP_DEVICE int vec_width(const bf16*) { return 8; }
TP_DEVICE int vec_width(const float*) { return 4; }
TP_DEVICE void load_vec(const bf16* p, float (&v)[8]) { load_bf16x8(p, v); }
TP_DEVICE void load_vec(const float* p, float (&v)[8])
{
    const float4 w = *reinterpret_cast<const float4*>(p);
    v[0] = w.x; v[1] = w.y; v[2] = w.z; v[3] = w.w;
}
TP_DEVICE void store_vec(bf16* p, const float (&v)[8]) { store_bf16x8(p, v); }
TP_DEVICE void store_vec(float* p, const float (&v)[8])
{
    float4 w; w.x = v[0]; w.y = v[1]; w.z = v[2]; w.w = v[3];
    *reinterpret_cast<float4*>(p) = w;
}

template <typename T>
TP_DEVICE void cross_entropy_row(T* logits, const i32* targets, float* loss, int row, int V, float loss_scale)
{
    __shared__ float scratch_m[32], scratch_s[32];
    __shared__ float target_logit;
    T* x = logits + (i64)row * V;
    const int target = targets[row];
    const bool ignored = target == IGNORE_INDEX;
    const bool invalid = !ignored && (target < 0 || target >= V);
    const int W = vec_width(x);
    const bool vec = (V % W) == 0 && tp_aligned(x, 16);

    if (ignored || invalid)
    {
        // No target: no loss and no gradient (NaN for an id outside the vocabulary: loud, not silent).
        const float fill = invalid ? TP_NAN : 0.0f;
        for (int v = threadIdx.x; v < V; v += blockDim.x) store_from_f32(x + v, fill);
        if (threadIdx.x == 0) loss[row] = fill;
        return;
    }

    // Pass 1: online max and sum of exp, one state per thread.
    float m = -TP_INFINITY, s = 0.0f;
    if (vec)
        for (int v = threadIdx.x * W; v < V; v += blockDim.x * W)
        {
            float c[8];
            load_vec(x + v, c);
            for (int k = 0; k < W; k++) softmax_add(m, s, c[k]);
        }
    else
        for (int v = threadIdx.x; v < V; v += blockDim.x) softmax_add(m, s, load_as_f32(x + v));
    if (threadIdx.x == 0) target_logit = load_as_f32(x + target);   // read before pass 2 overwrites it

    // Merge the states across the warp, then across warps (fixed order: deterministic).
    for (int o = 16; o > 0; o >>= 1)
    {
        const float m2 = __shfl_xor_sync(TP_FULL_MASK, m, o), s2 = __shfl_xor_sync(TP_FULL_MASK, s, o);
        softmax_merge(m, s, m2, s2);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (lane == 0) { scratch_m[warp] = m; scratch_s[warp] = s; }
    __syncthreads();
    m = -TP_INFINITY; s = 0.0f;
    for (int w = 0; w < warps; w++) softmax_merge(m, s, scratch_m[w], scratch_s[w]);
    const float lse = m + logf(s);
    if (threadIdx.x == 0) loss[row] = lse - target_logit;

    // Pass 2: dlogits = (softmax - onehot) * loss_scale, in place.
    if (vec)
        for (int v = threadIdx.x * W; v < V; v += blockDim.x * W)
        {
            float c[8];
            load_vec(x + v, c);
            for (int k = 0; k < W; k++) c[k] = (expf(c[k] - lse) - (v + k == target ? 1.0f : 0.0f)) * loss_scale;
            store_vec(x + v, c);
        }
    else
        for (int v = threadIdx.x; v < V; v += blockDim.x)
            store_from_f32(x + v, (expf(load_as_f32(x + v) - lse) - (v == target ? 1.0f : 0.0f)) * loss_scale);
}

/// For each row n of logits [N, V]: loss[n] = logsumexp(logits[n]) - logits[n, targets[n]] (fp32), and
/// logits[n] is overwritten by (softmax(logits[n]) - onehot(targets[n])) * loss_scale, loss_scale =
/// step->loss_scale read from device memory (step null: 1), so a captured training graph replays for any
/// scale. targets[n] = -100
/// ignores the row (loss 0, gradient row 0); any other target outside [0, V) gives NaN (loss and row).
/// The causal shift is the caller's: targets[b, t] = labels[b, t + 1], and -100 for t = T - 1.
/// Launch: gridDim.x = N (one block per row; grid-stride over rows), blockDim.x a multiple of 32,
/// at most 1024 (1024 recommended for large V).
extern "C" __global__ void cross_entropy_fused_bf16(bf16* logits, const i32* __restrict__ targets, float* __restrict__ loss,
                                                    int N, int V, const StepParams* __restrict__ step)
{
    const float loss_scale = step ? step->loss_scale : 1.0f;
    for (int row = blockIdx.x; row < N; row += gridDim.x)
    {
        cross_entropy_row(logits, targets, loss, row, V, loss_scale);
        __syncthreads();   // shared scratch is reused by the next row
    }
}

/// cross_entropy_fused_bf16 on fp32 logits.
extern "C" __global__ void cross_entropy_fused_f32(float* logits, const i32* __restrict__ targets, float* __restrict__ loss,
                                                   int N, int V, const StepParams* __restrict__ step)
{
    const float loss_scale = step ? step->loss_scale : 1.0f;
    for (int row = blockIdx.x; row < N; row += gridDim.x)
    {
        cross_entropy_row(logits, targets, loss, row, V, loss_scale);
        __syncthreads();
    }
}

/// out[n] = argmax over v of logits[n, v], the lowest index on ties (NaN entries are skipped; a row
/// of NaN gives 0). logits [N, V] bf16 or fp32. Launch as cross_entropy_fused_*.
template <typename T>
TP_DEVICE void argmax_rows(i32* out, const T* logits, int N, int V)
{
    __shared__ float best_value[32];
    __shared__ int best_index[32];
    for (int row = blockIdx.x; row < N; row += gridDim.x)
    {
        const T* x = logits + (i64)row * V;
        float bv = -TP_INFINITY;
        int bi = 0x7fffffff;
        for (int v = threadIdx.x; v < V; v += blockDim.x)
        {
            const float c = load_as_f32(x + v);
            if (c > bv || (c == bv && v < bi)) { bv = c; bi = v; }
        }
        for (int o = 16; o > 0; o >>= 1)
        {
            const float ov = __shfl_xor_sync(TP_FULL_MASK, bv, o);
            const int oi = __shfl_xor_sync(TP_FULL_MASK, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
        }
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
        if (lane == 0) { best_value[warp] = bv; best_index[warp] = bi; }
        __syncthreads();
        if (threadIdx.x == 0)
        {
            for (int w = 1; w < warps; w++)
                if (best_value[w] > bv || (best_value[w] == bv && best_index[w] < bi)) { bv = best_value[w]; bi = best_index[w]; }
            out[row] = bi == 0x7fffffff ? 0 : bi;
        }
        __syncthreads();
    }
}

extern "C" __global__ void argmax_rows_f32(i32* __restrict__ out, const float* __restrict__ logits, int N, int V)
{
    argmax_rows(out, logits, N, V);
}
