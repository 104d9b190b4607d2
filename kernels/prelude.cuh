// prelude.cuh: the one header every kernel file includes.
//
// The kernels are compiled at run time by NVRTC, which ships no toolkit headers of its own (NVRTC 11.8
// has no cuda_bf16.h or mma.h built in, and newer ones need the toolkit's include folder). So nothing
// here includes anything: this file provides the few pieces the kernels need, written out:
//   - fixed-width integer typedefs,
//   - a bf16 storage type and fp32 <-> bf16 conversions that round exactly like IO/BFloat16.cs,
//   - warp and block reductions,
//   - tensor-core helpers (mma.sync m16n8k16 bf16 -> fp32, ldmatrix, cp.async) as inline PTX, so
//     compiling to sm_XX cubin lets ptxas check every instruction,
//   - Philox-4x32-10 and the engine's random-stream convention, bit-identical to
//     TransPeft/Philox4x32.cs and TransPeft/RandomStream.cs.
//
// Architecture: everything compiles for sm_80 and newer. The tensor-core and cp.async helpers need
// sm_80 (they trap if a kernel using them is ever built for an older target). No Hopper-only
// instruction (wgmma, TMA) is used; code that ever needs one goes behind TPEFT_HOPPER below.
//
// TPEFT_HOST_EMULATION: when defined, the includer supplies the hardware primitives (thread indices,
// barriers, shuffles, mma, ldmatrix, cp.async) and compiles the kernels as ordinary C++ on a CPU, to
// check the kernels' indexing logic on machines without a GPU. NVRTC never defines it.
#pragma once

typedef signed char i8;
typedef unsigned char u8;
typedef short i16;
typedef unsigned short u16;
typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#ifndef TPEFT_HOST_EMULATION
#define TP_DEVICE __device__ __forceinline__
#define TP_ALIGN(n) __align__(n)
// Dynamic shared memory (the size comes from the launch); declared through a macro so the host
// emulation can hand out an ordinary buffer.
#define TP_DYNAMIC_SHARED(name) extern __shared__ __align__(16) unsigned char name[]
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define TPEFT_HOPPER 1   // sm_90 and newer; nothing uses it yet
#endif

#define TP_INFINITY __int_as_float(0x7f800000)
#define TP_NAN __int_as_float(0x7fffffff)

// ------------------------------------------------------------------------------------------------
// bf16: 16-bit storage, fp32 arithmetic.
// ------------------------------------------------------------------------------------------------

/// bfloat16 as stored: the top 16 bits of an fp32. No arithmetic on it; convert to float first.
struct TP_ALIGN(2) bf16 { u16 bits; };

TP_DEVICE float bf16_to_f32(bf16 x) { return __uint_as_float(((u32)x.bits) << 16); }

/// Round to nearest even, exactly as IO/BFloat16.FromSingle: a NaN stays a quiet NaN (its top bits
/// with the quiet bit set); overflow rounds to infinity.
TP_DEVICE bf16 f32_to_bf16(float f)
{
    u32 u = __float_as_uint(f);
    bf16 r;
    if ((u & 0x7fffffffu) > 0x7f800000u) { r.bits = (u16)((u >> 16) | 0x40u); return r; }
    u += 0x7fffu + ((u >> 16) & 1u);
    r.bits = (u16)(u >> 16);
    return r;
}

/// fp32 -> bf16 -> fp32: what a value becomes once stored as bf16.
TP_DEVICE float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

/// Two bf16 in one 32-bit word, element 0 in the low half (the order mma fragments and memory use).
TP_DEVICE u32 pack_bf16x2(float lo, float hi)
{
    return (u32)f32_to_bf16(lo).bits | ((u32)f32_to_bf16(hi).bits << 16);
}
TP_DEVICE float bf16x2_lo(u32 w) { return __uint_as_float(w << 16); }
TP_DEVICE float bf16x2_hi(u32 w) { return __uint_as_float(w & 0xffff0000u); }

/// Scalar loads and stores in fp32 for the two element types the kernels accept.
TP_DEVICE float load_as_f32(const bf16* p) { return bf16_to_f32(*p); }
TP_DEVICE float load_as_f32(const float* p) { return *p; }
TP_DEVICE void store_from_f32(bf16* p, float v) { *p = f32_to_bf16(v); }
TP_DEVICE void store_from_f32(float* p, float v) { *p = v; }

/// Eight consecutive bf16 (16 bytes, one 128-bit access). p must be 16-byte aligned.
TP_DEVICE void load_bf16x8(const bf16* p, float (&v)[8])
{
    uint4 w = *reinterpret_cast<const uint4*>(p);
    v[0] = bf16x2_lo(w.x); v[1] = bf16x2_hi(w.x);
    v[2] = bf16x2_lo(w.y); v[3] = bf16x2_hi(w.y);
    v[4] = bf16x2_lo(w.z); v[5] = bf16x2_hi(w.z);
    v[6] = bf16x2_lo(w.w); v[7] = bf16x2_hi(w.w);
}
TP_DEVICE void store_bf16x8(bf16* p, const float (&v)[8])
{
    uint4 w;
    w.x = pack_bf16x2(v[0], v[1]); w.y = pack_bf16x2(v[2], v[3]);
    w.z = pack_bf16x2(v[4], v[5]); w.w = pack_bf16x2(v[6], v[7]);
    *reinterpret_cast<uint4*>(p) = w;
}

/// True when every address is a multiple of `bytes` (a power of two): vector paths check this once.
TP_DEVICE bool tp_aligned(const void* p, u32 bytes) { return (((u64)p) & (u64)(bytes - 1)) == 0; }

// ------------------------------------------------------------------------------------------------
// Reductions. Every kernel launches whole warps (blockDim.x a multiple of 32), so the full mask holds.
// Reductions run in a fixed order, so the same launch gives the same bits every time.
// ------------------------------------------------------------------------------------------------

#define TP_FULL_MASK 0xffffffffu

TP_DEVICE float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(TP_FULL_MASK, v, o);
    return v;
}
TP_DEVICE float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(TP_FULL_MASK, v, o));
    return v;
}

/// Sum over the block; every thread gets the result. `scratch` holds at least 32 floats and may be
/// reused right after the call (the function ends with a barrier).
TP_DEVICE float block_sum(float v, float* scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : 0.0f;
    t = warp_sum(t);
    __syncthreads();
    return t;
}
TP_DEVICE float block_max(float v, float* scratch)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float t = lane < warps ? scratch[lane] : -TP_INFINITY;
    t = warp_max(t);
    __syncthreads();
    return t;
}

// ------------------------------------------------------------------------------------------------
// Philox-4x32-10 and the engine's random stream (mirror of TransPeft/RandomStream.cs):
//   key     = (seed low 32 bits, seed high 32 bits)
//   counter = (element / 4, lane, step, tag << 24 | microBatch & 0xFFFFFF)
//   word    = output[element % 4];  u = (word >> 8) * 2^-24;  the event fires when u < p
// lane = decoder layer for the FFN mask and layer drop, layer * 8 + projection for LoRA dropout.
// ------------------------------------------------------------------------------------------------

#define TP_TAG_FFN_MASK 1u
#define TP_TAG_LAYER_DROP 2u
#define TP_TAG_LORA_DROPOUT 3u

struct u32x4 { u32 x, y, z, w; };

TP_DEVICE u32x4 philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1)
{
#pragma unroll
    for (int round = 0; round < 10; round++)
    {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        const u64 p0 = (u64)0xD2511F53u * c0;
        const u64 p1 = (u64)0xCD9E8D57u * c2;
        const u32 hi0 = (u32)(p0 >> 32), lo0 = (u32)p0;
        const u32 hi1 = (u32)(p1 >> 32), lo1 = (u32)p1;
        const u32 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    }
    u32x4 r; r.x = c0; r.y = c1; r.z = c2; r.w = c3;
    return r;
}

/// The top 24 bits of a word as a float in [0, 1), exactly representable.
TP_DEVICE float philox_uniform(u32 word) { return (float)(word >> 8) * (1.0f / 16777216.0f); }

/// One micro-batch's stream: the kernel arguments (seed, step, micro_batch) packed once.
struct RandomStream
{
    u32 key0, key1, step, micro_batch;
};

TP_DEVICE RandomStream make_random_stream(u64 seed, u32 step, u32 micro_batch)
{
    RandomStream s;
    s.key0 = (u32)seed; s.key1 = (u32)(seed >> 32); s.step = step; s.micro_batch = micro_batch;
    return s;
}

/// The values of one training step that change from step to step, read by the kernels from device memory
/// (not passed by value) so that ONE captured CUDA graph per shape serves every step: the host rewrites this
/// struct with one asynchronous copy before each launch or replay (CudaTransformer; C# mirror:
/// Compute/Cuda/StepParams.cs, same layout, 40 bytes). A null pointer means: no FFN mask, no LoRA dropout
/// draws, loss scale 1 (inference and evaluation).
struct StepParams
{
    u64 mask_seed;                      // Trans-PEFT FFN mask stream (PhiloxFfnPerturbation.Stream)
    u32 mask_step, mask_micro_batch;
    u64 dropout_seed;                   // LoRA dropout stream (StepContext.Random)
    u32 dropout_step, dropout_micro_batch;
    float p_mask;                       // FFN masking probability; <= 0: no mask, nothing drawn
    float loss_scale;                   // scale of the fused cross-entropy's logits gradient
};
static_assert(sizeof(StepParams) == 40, "StepParams must match Compute/Cuda/StepParams.cs");

TP_DEVICE RandomStream step_mask_stream(const StepParams* sp)
{
    return sp ? make_random_stream(sp->mask_seed, sp->mask_step, sp->mask_micro_batch) : make_random_stream(0, 0, 0);
}

TP_DEVICE RandomStream step_dropout_stream(const StepParams* sp)
{
    return sp ? make_random_stream(sp->dropout_seed, sp->dropout_step, sp->dropout_micro_batch) : make_random_stream(0, 0, 0);
}

/// The uniform of one element.
TP_DEVICE float stream_uniform(const RandomStream& s, u32 tag, u32 lane, u32 element)
{
    const u32x4 r = philox4x32_10(element >> 2, lane, s.step, (tag << 24) | (s.micro_batch & 0xFFFFFFu), s.key0, s.key1);
    const u32 i = element & 3u;
    const u32 w = i == 0 ? r.x : i == 1 ? r.y : i == 2 ? r.z : r.w;
    return philox_uniform(w);
}

/// The uniforms of elements 4*quad .. 4*quad+3 from one generator call.
TP_DEVICE void stream_uniform4(const RandomStream& s, u32 tag, u32 lane, u32 quad, float (&u)[4])
{
    const u32x4 r = philox4x32_10(quad, lane, s.step, (tag << 24) | (s.micro_batch & 0xFFFFFFu), s.key0, s.key1);
    u[0] = philox_uniform(r.x); u[1] = philox_uniform(r.y);
    u[2] = philox_uniform(r.z); u[3] = philox_uniform(r.w);
}

// ------------------------------------------------------------------------------------------------
// Tensor cores and asynchronous copies (sm_80+), as inline PTX.
//
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, per lane (g = lane / 4, t = lane % 4):
//   A 16x16 row-major, a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
//   B 16x8 "col" (stored n-major: element (k, n) at n * ld + k), b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
//   C/D 16x8 fp32, c[0..1] = C[g][2t..2t+1], c[2..3] = C[g+8][2t..2t+1]
// Each 32-bit register holds two bf16, the lower-indexed element in the low half.
//
// ldmatrix.m8n8.x4.b16: lanes 8i..8i+7 give the row addresses of matrix i (8 rows of 8 bf16, 16
// bytes each); lane l receives in r[i] row l/4, elements 2(l%4) and 2(l%4)+1 of matrix i. With
// .trans it receives element (2(l%4), l/4) and (2(l%4)+1, l/4) instead: the transposed fragment.
// So an A fragment of a row-major 16x16 tile, or B fragments of a matrix stored n-major, come from
// ldmatrix; B fragments of a k-major (row-major [k][n]) matrix come from ldmatrix.trans.
// ------------------------------------------------------------------------------------------------
#ifndef TPEFT_HOST_EMULATION

/// A generic pointer into shared memory as the 32-bit shared-window address PTX wants.
TP_DEVICE u32 shared_address(const void* p)
{
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

/// d = a * b + c on one 16x8x16 tile (layouts above).
TP_DEVICE void mma_bf16_16816(float (&d)[4], const u32 (&a)[4], const u32 (&b)[2], const float (&c)[4])
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#else
    __trap();
#endif
}

/// Four 8x8 bf16 matrices from shared memory (row addresses from lanes 8i..8i+7 for matrix i).
TP_DEVICE void ldmatrix_x4(u32 (&r)[4], const void* row_address)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row_address)));
}
TP_DEVICE void ldmatrix_x4_trans(u32 (&r)[4], const void* row_address)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(shared_address(row_address)));
}

/// Copy 16 bytes global -> shared without passing through registers; `valid` false writes 16 zero
/// bytes instead (and reads nothing, though src must still be a mapped address).
TP_DEVICE void cp_async_16(void* smem, const void* gmem, bool valid)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    const int src_bytes = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
                 :: "r"(shared_address(smem)), "l"(gmem), "r"(src_bytes) : "memory");
#else
    __trap();
#endif
}
TP_DEVICE void cp_async_commit()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
/// Wait until at most `pending` committed groups are still in flight.
template <int pending>
TP_DEVICE void cp_async_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;\n" :: "n"(pending) : "memory");
#endif
}

#endif // TPEFT_HOST_EMULATION

/// Zero an mma accumulator array.
template <int N>
TP_DEVICE void zero_fragments(float (&acc)[N][4])
{
#pragma unroll
    for (int i = 0; i < N; i++) { acc[i][0] = 0.0f; acc[i][1] = 0.0f; acc[i][2] = 0.0f; acc[i][3] = 0.0f; }
}

/// The fp32 accumulators of two neighbouring 16x8 tiles (columns 16k..16k+7 and 16k+8..16k+15) form,
/// rounded to bf16, the A fragment of the 16x16 tile they make up: the C layout of m16n8 lines up
/// with the A layout of m16k16. This is how P (softmax probabilities) feeds P*V without a round
/// trip through shared memory.
TP_DEVICE void accumulators_to_a_fragment(u32 (&a)[4], const float (&lo)[4], const float (&hi)[4])
{
    a[0] = pack_bf16x2(lo[0], lo[1]);
    a[1] = pack_bf16x2(lo[2], lo[3]);
    a[2] = pack_bf16x2(hi[0], hi[1]);
    a[3] = pack_bf16x2(hi[2], hi[3]);
}

// ------------------------------------------------------------------------------------------------
// Pieces two kernel files share (NVRTC compiles each file alone, and kernel files include nothing
// but this prelude): RoPE's angle and rotation (rope.cu, decode.cu), and one causal attention row
// (attention.cu's generic forward, decode.cu's decode attention), so both give the same bits.
// ------------------------------------------------------------------------------------------------

/// cos and sin of pos * inv_freq. The product is formed and reduced modulo 2*pi in double, so long
/// positions lose no accuracy to fp32 rounding of the angle; sin/cos of the reduced angle in fp32.
TP_DEVICE void rope_angle(int pos, double inv_freq, float sign, float& c, float& s)
{
    const double two_pi = 6.283185307179586476925286766559;
    double a = (double)pos * inv_freq;
    a -= floor(a / two_pi) * two_pi;
    sincosf(sign * (float)a, &s, &c);
}

/// Rotates dims j and j + d/2 of one head (rotate-half layout) in place by sign * pos * inv_freq[j].
TP_DEVICE void rope_rotate_pair(bf16* head, int j, int half, int pos, double inv_freq, float sign)
{
    float c, s;
    rope_angle(pos, inv_freq, sign, c, s);
    const float x0 = bf16_to_f32(head[j]), x1 = bf16_to_f32(head[j + half]);
    head[j] = f32_to_bf16(x0 * c - x1 * s);
    head[j + half] = f32_to_bf16(x1 * c + x0 * s);
}

#define ATT_MAX_D 256
#define ATT_DIMS_PER_LANE (ATT_MAX_D / 32)

/// dot(x, row) over d elements, x fp32 in shared memory, row bf16 in global memory (d even, row 4-byte
/// aligned: two elements per load).
TP_DEVICE float dot_row(const float* x, const bf16* row, int d)
{
    const u32* r = reinterpret_cast<const u32*>(row);
    float acc = 0.0f;
    for (int c = 0; c < d; c += 2)
    {
        const u32 w = r[c >> 1];
        acc += x[c] * bf16x2_lo(w) + x[c + 1] * bf16x2_hi(w);
    }
    return acc;
}

/// One warp computes one query row of softmax(scale q k^T) v over keys 0 .. last (last >= 0), flash style:
/// keys j at k + j * kv_stride (likewise v), qr the query row [d] bf16, qs a [ATT_MAX_D] fp32 shared buffer
/// owned by this warp. Writes orow [d] bf16 and, when lse is not null, *lse = logsumexp (lane 0).
/// d even, <= 256. The whole warp must call it (shuffles).
TP_DEVICE void attention_row(bf16* orow, float* lse, float* qs, const bf16* qr, const bf16* k, const bf16* v,
                             i64 kv_stride, int last, int d, float scale)
{
    const int lane = threadIdx.x & 31;
    for (int c = lane; c < d; c += 32) qs[c] = bf16_to_f32(qr[c]);
    __syncwarp();
    float m = -TP_INFINITY, l = 0.0f;
    float o[ATT_DIMS_PER_LANE];
    for (int i = 0; i < ATT_DIMS_PER_LANE; i++) o[i] = 0.0f;
    for (int j0 = 0; j0 <= last; j0 += 32)
    {
        // Each lane scores one key of the chunk of 32 ...
        const int j = j0 + lane;
        const float s = j <= last ? scale * dot_row(qs, k + (i64)j * kv_stride, d) : -TP_INFINITY;
        const float m_new = fmaxf(m, warp_max(s));   // finite: key j0 is always visible
        const float alpha = expf(m - m_new);
        const float p = j <= last ? expf(s - m_new) : 0.0f;
        l = l * alpha + warp_sum(p);
        m = m_new;
        for (int i = 0; i < ATT_DIMS_PER_LANE; i++) o[i] *= alpha;
        // ... then the warp accumulates p_j * v_j with each lane owning the dims lane, lane + 32, ...
        const int span = min(32, last - j0 + 1);
        for (int jj = 0; jj < span; jj++)
        {
            const float pj = __shfl_sync(TP_FULL_MASK, p, jj);
            const bf16* vr = v + (i64)(j0 + jj) * kv_stride;
#pragma unroll
            for (int i = 0; i < ATT_DIMS_PER_LANE; i++)
            {
                const int c = lane + 32 * i;
                if (c < d) o[i] += pj * bf16_to_f32(vr[c]);
            }
        }
    }
    const float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < ATT_DIMS_PER_LANE; i++)
    {
        const int c = lane + 32 * i;
        if (c < d) orow[c] = f32_to_bf16(o[i] * inv);
    }
    if (lse != nullptr && lane == 0) *lse = m + logf(l);
}
