// Rotary position embedding, rotate-half layout (Llama / Qwen2): within each head, dims j and j + d/2
// are rotated together by the angle pos * inv_freq[j]:
//   x'[j]       = x[j] cos - x[j + d/2] sin
//   x'[j + d/2] = x[j + d/2] cos + x[j] sin
// inv_freq [d/2] comes from the host in fp64, as Rope.InverseFrequencies computes it (rope_theta and
// llama3 scaling are host-side): at position 10^5 an fp32 inv_freq alone would move the angle by
// ~6e-3 rad. The backward is the transpose of a rotation: the same rotation by -angle.
// Mirrors Compute/Cpu/Rope.cs Forward/Backward (pos_offset = its pos0). The angle and the rotation
// (rope_angle, rope_rotate_pair) live in prelude.cuh: decode.cu rotates rows at per-row positions with them.
#include "prelude.cuh"

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
        rope_rotate_pair(x + row * d, j, half, t + pos_offset, inv_freq[j], sign);
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
