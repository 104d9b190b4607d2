// Rotary position embedding, rotate-half layout (Llama / Qwen2): within each head, dims j and j + d/2
// are rotated together by the angle pos * inv_freq[j]:
//   x'[j]       = x[j] cos - x[j + d/2] sin
//   x'[j + d/2] = x[j + d/2] cos + x[j] sin
// inv_freq [d/2] comes from the host in fp64, as Rope.InverseFrequencies computes it (rope_theta and
// llama3 scaling are host-side): at position 10^5 an fp32 inv_freq alone would move the angle by
// ~6e-3 rad. The backward is the transpose of a rotation: the same rotation by -angle.
// Mirrors Compute/Cpu/Rope.cs Forward/Backward (pos_offset = its pos0).
#include "prelude.cuh"

/// cos and sin of pos * inv_freq. The product is formed and reduced modulo 2*pi in double, so long
/// positions lose no accuracy to fp32 rounding of the angle; sin/cos of the reduced angle in fp32.
TP_DEVICE void rope_angle(int pos, double inv_freq, float sign, float& c, float& s)
{
    const double two_pi = 6.283185307179586476925286766559;
    double a = (double)pos * inv_freq;
    a -= floor(a / two_pi) * two_pi;
    sincosf(sign * (float)a, &s, &c);
}

/// x [B, T, heads, d] bf16, rotated in place; position of row t is t + pos_offset (KV-cache decode
/// passes the number of cached tokens). One thread per (b, t, head, j < d/2) pair: grid-stride, so
/// any 1-D launch covers all B*T*heads*d/2 pairs.
TP_DEVICE void rope_apply(bf16* x, const double* inv_freq, int B, int T, int heads, int d, int pos_offset, float sign)
{
    const int half = d >> 1;
    const i64 pairs = (i64)B * T * heads * half;
    for (i64 p = (i64)blockIdx.x * blockDim.x + threadIdx.x; p < pairs; p += (i64)gridDim.x * blockDim.x)
    {
        const int j = (int)(p % half);
        const i64 row = p / half;               // (b * T + t) * heads + h
        const int t = (int)((row / heads) % T);
        float c, s;
        rope_angle(t + pos_offset, inv_freq[j], sign, c, s);
        bf16* head = x + row * d;
        const float x0 = bf16_to_f32(head[j]), x1 = bf16_to_f32(head[j + half]);
        head[j] = f32_to_bf16(x0 * c - x1 * s);
        head[j + half] = f32_to_bf16(x1 * c + x0 * s);
    }
}

/// Rotate q or k in place by +angle. d must be even.
extern "C" __global__ void rope_forward(bf16* x, const double* __restrict__ inv_freq, int B, int T, int heads, int d, int pos_offset)
{
    rope_apply(x, inv_freq, B, T, heads, d, pos_offset, 1.0f);
}

/// dx = R(-angle) dx' in place, on the gradient of the rotated tensor. d must be even.
extern "C" __global__ void rope_backward(bf16* dx, const double* __restrict__ inv_freq, int B, int T, int heads, int d, int pos_offset)
{
    rope_apply(dx, inv_freq, B, T, heads, d, pos_offset, -1.0f);
}
