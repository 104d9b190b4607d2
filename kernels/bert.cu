// BERT encoder ops where BERT differs from the Llama path: LayerNorm with a bias (post-LN blocks),
// exact GELU with Trans-PEFT knowledge masking, and bidirectional attention over a key padding mask.
// Bias adds reuse elementwise.cu's bias_add_bf16. Mirrors Compute/Cpu/Bert/{LayerNorm,Gelu,MaskedAttention}.cs.
// Contracts in kernels/README.md. Unverified on a GPU: compile-checked by NVRTC and run by the kernel emulator.
#include "prelude.cuh"

/// out = (inp - mean) * rstd * weight + bias per row; mean[row], rstd[row] = 1/sqrt(var + eps) saved in fp32
/// (both nullable for inference). inp, out [N, C] bf16; weight, bias [C] bf16. Two passes over the row for the
/// variance (the centred form, as the CPU reference): rows are a few hundred wide and stay in L1.
/// Launch: blockDim.x a multiple of 32 (256 recommended), gridDim.x = ceil(N / (blockDim.x / 32)): one warp per row.
extern "C" __global__ void layernorm_forward(bf16* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                                             const bf16* __restrict__ inp, const bf16* __restrict__ weight,
                                             const bf16* __restrict__ bias, int N, int C, float eps)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const int lane = threadIdx.x & 31;
    const bf16* x = inp + (i64)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += bf16_to_f32(x[c]);
    const float mu = warp_sum(s) / (float)C;
    float ss = 0.0f;
    for (int c = lane; c < C; c += 32) { const float d = bf16_to_f32(x[c]) - mu; ss += d * d; }
    const float r = rsqrtf(warp_sum(ss) / (float)C + eps);
    if (lane == 0)
    {
        if (mean) mean[row] = mu;
        if (rstd) rstd[row] = r;
    }
    bf16* y = out + (i64)row * C;
    for (int c = lane; c < C; c += 32)
        y[c] = f32_to_bf16((bf16_to_f32(x[c]) - mu) * r * bf16_to_f32(weight[c]) + bf16_to_f32(bias[c]));
}

/// dinp (+)= dLayerNorm/dinp · dout: with x̂ = (x − mean)·rstd and g = dout∘weight,
/// dx = rstd · (g − mean(g) − x̂ · mean(g∘x̂)). accumulate != 0 adds into dinp (the residual stream's gradient).
/// The weight/bias gradients are not computed (frozen in LoRA training; column_sum_bf16 gives the bias one).
/// Same launch as layernorm_forward.
extern "C" __global__ void layernorm_backward(bf16* dinp, const bf16* __restrict__ dout, const bf16* __restrict__ inp,
                                              const bf16* __restrict__ weight, const float* __restrict__ mean,
                                              const float* __restrict__ rstd, int N, int C, int accumulate)
{
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;
    const int lane = threadIdx.x & 31;
    const i64 base = (i64)row * C;
    const float mu = mean[row], r = rstd[row];
    float sg = 0.0f, sgx = 0.0f;
    for (int c = lane; c < C; c += 32)
    {
        const float g = bf16_to_f32(dout[base + c]) * bf16_to_f32(weight[c]);
        sg += g;
        sgx += g * (bf16_to_f32(inp[base + c]) - mu) * r;
    }
    const float mg = warp_sum(sg) / (float)C, mgx = warp_sum(sgx) / (float)C;
    for (int c = lane; c < C; c += 32)
    {
        const float g = bf16_to_f32(dout[base + c]) * bf16_to_f32(weight[c]);
        const float xhat = (bf16_to_f32(inp[base + c]) - mu) * r;
        float d = r * (g - mg - xhat * mgx);
        if (accumulate) d += bf16_to_f32(dinp[base + c]);
        dinp[base + c] = f32_to_bf16(d);
    }
}

/// Keep factor of element e (= row * I + j) of layer `layer`: 0 with probability p_mask, else 1 (no rescaling),
/// drawn exactly as Compute/Cpu (RandomStream.FillKeep with TagFfnMask, lane = layer).
TP_DEVICE float gelu_keep(const RandomStream& rs, float p_mask, u32 layer, i64 e)
{
    return p_mask > 0.0f && stream_uniform(rs, TP_TAG_FFN_MASK, layer, (u32)e) < p_mask ? 0.0f : 1.0f;
}

/// a = mask ∘ gelu(u) with exact gelu(u) = ½u(1 + erf(u/√2)), for u, a [N, I] bf16 (a may alias u).
/// p_mask = 0 draws nothing. Launch: any grid, grid-stride over the N·I elements.
extern "C" __global__ void gelu_forward(bf16* a, const bf16* u, int N, int I,
                                        float p_mask, u64 seed, u32 step, u32 micro_batch, u32 layer)
{
    const i64 n = (i64)N * I;
    const RandomStream rs = make_random_stream(seed, step, micro_batch);
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x)
    {
        const float x = bf16_to_f32(u[e]);
        a[e] = f32_to_bf16(gelu_keep(rs, p_mask, layer, e) * 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
    }
}

/// du = da ∘ mask ∘ gelu'(u), gelu'(u) = Φ(u) + u·φ(u); same mask and launch as gelu_forward (du may alias da).
extern "C" __global__ void gelu_backward(bf16* du, const bf16* da, const bf16* __restrict__ u, int N, int I,
                                         float p_mask, u64 seed, u32 step, u32 micro_batch, u32 layer)
{
    const i64 n = (i64)N * I;
    const RandomStream rs = make_random_stream(seed, step, micro_batch);
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (i64)gridDim.x * blockDim.x)
    {
        const float x = bf16_to_f32(u[e]);
        const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
        du[e] = f32_to_bf16(bf16_to_f32(da[e]) * gelu_keep(rs, p_mask, layer, e) * (cdf + x * pdf));
    }
}

/// Bidirectional attention with a key padding mask: for sequence b, head h and query row i,
/// out[b,i,h,:] = softmax_j<valid[b](q·k_j · scale) · v_j; keys at or past valid[b] are padding and get no
/// weight (padded queries still attend, as in HF/ONNX Runtime); lse[b,h,i] = logsumexp of the scaled scores
/// (nullable; what a backward would need). q, k, v, out [B·T, H·D] bf16 with heads side by side in a row.
/// One warp per (b, h, i): the lanes split D (D ≤ 128, up to 4 elements each), one warp_sum per key for the
/// score, and an online softmax (running max and sum) so nothing T-sized is stored.
/// Launch: blockDim.x a multiple of 32 (128 recommended), gridDim.x = ceil(B·H·T / (blockDim.x / 32)).
extern "C" __global__ void masked_attention_forward(bf16* __restrict__ out, float* __restrict__ lse,
                                                    const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                    const bf16* __restrict__ v, const i32* __restrict__ valid,
                                                    int B, int T, int H, int D, float scale)
{
    const i64 w = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (w >= (i64)B * H * T) return;
    const int lane = threadIdx.x & 31;
    const int i = (int)(w % T), h = (int)((w / T) % H), b = (int)(w / ((i64)T * H));
    const int HD = H * D, keys = valid[b];
    const bf16* qrow = q + ((i64)b * T + i) * HD + (i64)h * D;
    float qv[4], o[4];
#pragma unroll
    for (int t = 0; t < 4; t++)
    {
        const int d = lane + 32 * t;
        qv[t] = d < D ? bf16_to_f32(qrow[d]) * scale : 0.0f;
        o[t] = 0.0f;
    }
    float m = -TP_INFINITY, l = 0.0f;
    for (int j = 0; j < keys; j++)
    {
        const i64 kv = ((i64)b * T + j) * HD + (i64)h * D;
        float s = 0.0f;
#pragma unroll
        for (int t = 0; t < 4; t++)
        {
            const int d = lane + 32 * t;
            if (d < D) s += qv[t] * bf16_to_f32(k[kv + d]);
        }
        s = warp_sum(s);
        const float mNew = fmaxf(m, s);
        const float corr = expf(m - mNew), p = expf(s - mNew);
        l = l * corr + p;
#pragma unroll
        for (int t = 0; t < 4; t++)
        {
            const int d = lane + 32 * t;
            if (d < D) o[t] = o[t] * corr + p * bf16_to_f32(v[kv + d]);
        }
        m = mNew;
    }
    bf16* orow = out + ((i64)b * T + i) * HD + (i64)h * D;
    const float inv = keys > 0 ? 1.0f / l : 0.0f;
#pragma unroll
    for (int t = 0; t < 4; t++)
    {
        const int d = lane + 32 * t;
        if (d < D) orow[d] = f32_to_bf16(o[t] * inv);
    }
    if (lse && lane == 0) lse[((i64)b * H + h) * T + i] = keys > 0 ? m + logf(l) : -TP_INFINITY;
}
