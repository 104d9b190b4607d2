// SwiGLU with Trans-PEFT knowledge masking, fused:  a = silu(gate) * up * keep.
// keep is 0 where the Philox stream fires for element e = row * I + j (the flat index of the
// [N, I] activation), tag FFN mask, lane = layer: exactly PhiloxFfnPerturbation.FillMask. The kept
// values are NOT rescaled (Trans-PEFT's masking, unlike dropout). The backward regenerates the same
// mask from the same arguments instead of storing it. The stream and p_mask come from the step's
// StepParams in device memory (null: no mask), so a captured graph replays for every step.
// Mirrors Compute/Cpu/SwiGlu.cs.
#include "prelude.cuh"

TP_DEVICE float sigmoidf(float z) { return 1.0f / (1.0f + expf(-z)); }

/// Work unit: the 4 elements of one Philox output quad (e = 4q .. 4q+3), so each generator call
/// is used whole. Loads are 8-byte vectors when the pointers allow and the quad is complete.
struct Quad { float v[4]; };

TP_DEVICE Quad load_quad(const bf16* p, i64 e0, i64 n, bool vec)
{
    Quad q;
    if (vec && e0 + 3 < n)
    {
        const uint2 w = *reinterpret_cast<const uint2*>(p + e0);
        q.v[0] = bf16x2_lo(w.x); q.v[1] = bf16x2_hi(w.x); q.v[2] = bf16x2_lo(w.y); q.v[3] = bf16x2_hi(w.y);
    }
    else
        for (int k = 0; k < 4; k++) q.v[k] = e0 + k < n ? bf16_to_f32(p[e0 + k]) : 0.0f;
    return q;
}
TP_DEVICE void store_quad(bf16* p, const Quad& q, i64 e0, i64 n, bool vec)
{
    if (vec && e0 + 3 < n)
    {
        uint2 w;
        w.x = pack_bf16x2(q.v[0], q.v[1]); w.y = pack_bf16x2(q.v[2], q.v[3]);
        *reinterpret_cast<uint2*>(p + e0) = w;
    }
    else
        for (int k = 0; k < 4; k++) if (e0 + k < n) p[e0 + k] = f32_to_bf16(q.v[k]);
}

/// keep[k] = 1 or 0 for the quad's elements; all ones when p_mask <= 0 (no generator call).
TP_DEVICE void keep_quad(float (&keep)[4], float p_mask, const RandomStream& rs, u32 layer, u32 quad)
{
    if (p_mask <= 0.0f) { keep[0] = keep[1] = keep[2] = keep[3] = 1.0f; return; }
    float u[4];
    stream_uniform4(rs, TP_TAG_FFN_MASK, layer, quad, u);
    for (int k = 0; k < 4; k++) keep[k] = u[k] < p_mask ? 0.0f : 1.0f;
}

/// a = silu(gate) * up * keep, for a, gate, up [N, I] bf16 (N = B*T), fp32 math, one rounding.
/// The mask: step->p_mask and the step's mask stream (step null: no mask).
/// N * I must be below 2^32 (the element index of the random stream is 32-bit).
/// Launch: grid-stride over ceil(N*I / 4) quads, any 1-D launch (blockDim 256 recommended).
extern "C" __global__ void swiglu_forward(bf16* __restrict__ a, const bf16* __restrict__ gate, const bf16* __restrict__ up,
                                          int N, int I, const StepParams* __restrict__ step, u32 layer)
{
    const i64 n = (i64)N * I;
    const i64 quads = (n + 3) / 4;
    const float p_mask = step ? step->p_mask : 0.0f;
    const RandomStream rs = step_mask_stream(step);
    const bool vec = tp_aligned(a, 8) && tp_aligned(gate, 8) && tp_aligned(up, 8);
    for (i64 q = (i64)blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += (i64)gridDim.x * blockDim.x)
    {
        const i64 e0 = q * 4;
        const Quad g = load_quad(gate, e0, n, vec), u = load_quad(up, e0, n, vec);
        float keep[4];
        keep_quad(keep, p_mask, rs, layer, (u32)q);
        Quad out;
        for (int k = 0; k < 4; k++) out.v[k] = g.v[k] * sigmoidf(g.v[k]) * u.v[k] * keep[k];
        store_quad(a, out, e0, n, vec);
    }
}

/// dgate = da * keep * up * silu'(gate), dup = da * keep * silu(gate), with
/// silu'(z) = s (1 + z (1 - s)), s = sigmoid(z). Overwrites dgate and dup; dgate may alias gate and
/// dup may alias up (each element is read before it is written, by the same thread).
/// Same arguments, mask and launch as swiglu_forward.
extern "C" __global__ void swiglu_backward(bf16* dgate, bf16* dup, const bf16* __restrict__ da,
                                           const bf16* gate, const bf16* up,
                                           int N, int I, const StepParams* __restrict__ step, u32 layer)
{
    const i64 n = (i64)N * I;
    const i64 quads = (n + 3) / 4;
    const float p_mask = step ? step->p_mask : 0.0f;
    const RandomStream rs = step_mask_stream(step);
    const bool vec = tp_aligned(dgate, 8) && tp_aligned(dup, 8) && tp_aligned(da, 8) && tp_aligned(gate, 8) && tp_aligned(up, 8);
    for (i64 q = (i64)blockIdx.x * blockDim.x + threadIdx.x; q < quads; q += (i64)gridDim.x * blockDim.x)
    {
        const i64 e0 = q * 4;
        const Quad g = load_quad(gate, e0, n, vec), u = load_quad(up, e0, n, vec), d = load_quad(da, e0, n, vec);
        float keep[4];
        keep_quad(keep, p_mask, rs, layer, (u32)q);
        Quad dg, du;
        for (int k = 0; k < 4; k++)
        {
            const float s = sigmoidf(g.v[k]);
            const float dak = d.v[k] * keep[k];
            dg.v[k] = dak * u.v[k] * s * (1.0f + g.v[k] * (1.0f - s));
            du.v[k] = dak * g.v[k] * s;
        }
        store_quad(dgate, dg, e0, n, vec);
        store_quad(dup, du, e0, n, vec);
    }
}
