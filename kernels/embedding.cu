// Token embedding lookup and its gradient. Mirrors Compute/Cpu/Embedding.cs.
// Contracts in kernels/README.md.
#include "prelude.cuh"

/// out[n, :] = wte[ids[n], :], for out [N, C] bf16, ids [N] int32, wte [V, C] bf16.
/// An id outside [0, V) writes a row of NaN: the host validates ids, and should one slip through,
/// the loss turns NaN instead of silently reading another row.
/// Launch: gridDim.x = N (one block per row; a grid-stride loop covers any smaller grid),
/// blockDim.x any multiple of 32 (128 recommended).
extern "C" __global__ void embedding_forward(bf16* __restrict__ out, const i32* __restrict__ ids,
                                             const bf16* __restrict__ wte, int N, int C, int V)
{
    const bool vec = (C % 8) == 0 && tp_aligned(out, 16) && tp_aligned(wte, 16);
    for (int n = blockIdx.x; n < N; n += gridDim.x)
    {
        const int id = ids[n];
        bf16* dst = out + (i64)n * C;
        if (id < 0 || id >= V)
        {
            for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = f32_to_bf16(TP_NAN);
            continue;
        }
        const bf16* src = wte + (i64)id * C;
        if (vec)
            for (int c = threadIdx.x * 8; c < C; c += blockDim.x * 8)
                *reinterpret_cast<uint4*>(dst + c) = *reinterpret_cast<const uint4*>(src + c);
        else
            for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
    }
}

/// dwte[v, :] += sum over positions n with ids[n] == v of dout[n, :], in ascending n (fp32).
/// Deterministic without atomics: block v owns row v of dwte and scans all N ids for it, a chunk of
/// blockDim.x ids at a time; chunks without a hit cost one load and one barrier. That is V * N id
/// reads (mostly L2 hits), acceptable at our sizes, and the kernel only runs when the embedding is
/// trained (full fine-tuning; frozen under LoRA). Ids outside [0, V) are never matched.
/// Launch: gridDim.x = V (grid-stride over vocabulary rows covers any smaller grid), blockDim.x a
/// multiple of 32, at most 1024 (256 recommended).
extern "C" __global__ void embedding_backward(float* __restrict__ dwte, const bf16* __restrict__ dout,
                                              const i32* __restrict__ ids, int N, int C, int V)
{
    __shared__ u8 hit[1024];
    for (int v = blockIdx.x; v < V; v += gridDim.x)
    {
        float* row = dwte + (i64)v * C;
        for (int start = 0; start < N; start += blockDim.x)
        {
            const int n = start + threadIdx.x;
            const bool mine = n < N && ids[n] == v;
            hit[threadIdx.x] = mine ? 1 : 0;
            if (!__syncthreads_or(mine)) continue;   // the barrier also publishes hit[]
            const int span = min((int)blockDim.x, N - start);
            for (int k = 0; k < span; k++)
            {
                if (!hit[k]) continue;
                const bf16* g = dout + (i64)(start + k) * C;
                for (int c = threadIdx.x; c < C; c += blockDim.x) row[c] += bf16_to_f32(g[c]);
            }
            __syncthreads();   // hit[] is rewritten by the next chunk
        }
    }
}
