// Host emulation of the CUDA subset used by kernels/*.cu, to check kernel logic on a machine without a
// GPU (see README.md): each CUDA thread is an OS thread, blocks run one after another, __syncthreads and
// warp collectives are std::barrier rendezvous, and mma.sync, ldmatrix and cp.async follow the PTX ISA's
// fragment layouts. Include this before a kernel file; the prelude then skips its inline PTX.
#pragma once
#include <cmath>
#include <math.h>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <barrier>
#include <vector>
#include <atomic>
#include <memory>
#include <algorithm>
#include <functional>

#define TPEFT_HOST_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define TP_DEVICE static inline
#define TP_ALIGN(n) __attribute__((aligned(n)))
#define TP_DYNAMIC_SHARED(name) unsigned char* name = emu::dynamic_smem

struct dim3 { unsigned x = 1, y = 1, z = 1; dim3() {} dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {} };
struct uint4 { unsigned x, y, z, w; };
struct uint2 { unsigned x, y; };
struct float4 { float x, y, z, w; };
struct float2 { float x, y; };

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

template <class T> static inline T min(T a, T b) { return a < b ? a : b; }
template <class T> static inline T max(T a, T b) { return a > b ? a : b; }

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
[[noreturn]] static inline void __trap() { fprintf(stderr, "__trap()\n"); abort(); }

namespace emu {
struct Warp
{
    std::barrier<> bar;
    uint64_t slot[32];
    uint32_t a[32][4], b[32][2];
    float c[32][4];
    const void* ptr[32];
    explicit Warp(int n) : bar(n) {}
};
struct Block
{
    std::unique_ptr<std::barrier<>> bar;
    std::atomic<int> flag[2];
    std::vector<std::unique_ptr<Warp>> warps;
};
inline thread_local Block* blk;
inline thread_local Warp* warp;
inline thread_local int lane;
inline thread_local int epoch;
inline unsigned char* dynamic_smem;
}

static inline void __syncthreads() { emu::blk->bar->arrive_and_wait(); }
static inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp->bar.arrive_and_wait(); }
static inline int __syncthreads_or(int p)
{
    const int e = emu::epoch++ & 1;
    if (p) emu::blk->flag[e].fetch_or(1);
    emu::blk->bar->arrive_and_wait();
    const int r = emu::blk->flag[e].load();
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) emu::blk->flag[e ^ 1].store(0);
    emu::blk->bar->arrive_and_wait();
    return r;
}

template <class T>
static inline T emu_exchange(T v, int src)
{
    uint64_t raw = 0;
    memcpy(&raw, &v, sizeof(T));
    emu::warp->slot[emu::lane] = raw;
    emu::warp->bar.arrive_and_wait();
    const uint64_t r = emu::warp->slot[src & 31];
    emu::warp->bar.arrive_and_wait();
    T out;
    memcpy(&out, &r, sizeof(T));
    return out;
}
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int m) { return emu_exchange(v, emu::lane ^ m); }
template <class T> static inline T __shfl_sync(unsigned, T v, int s) { return emu_exchange(v, s); }
template <class T> static inline T __shfl_down_sync(unsigned, T v, int d) { return emu_exchange(v, emu::lane + d < 32 ? emu::lane + d : emu::lane); }

typedef unsigned int emu_u32;

static inline float emu_bf16(uint32_t reg, int half) { return __uint_as_float(half ? (reg & 0xffff0000u) : (reg << 16)); }

static inline void mma_bf16_16816(float (&d)[4], const emu_u32 (&a)[4], const emu_u32 (&b)[2], const float (&c)[4])
{
    emu::Warp* W = emu::warp;
    const int l = emu::lane;
    for (int i = 0; i < 4; i++) { W->a[l][i] = a[i]; W->c[l][i] = c[i]; }
    W->b[l][0] = b[0]; W->b[l][1] = b[1];
    W->bar.arrive_and_wait();
    const int g = l >> 2, t = l & 3;
    float out[4];
    for (int i = 0; i < 4; i++)
    {
        const int row = g + (i >> 1) * 8, col = 2 * t + (i & 1);
        float sum = W->c[l][i];
        for (int k = 0; k < 16; k++)
        {
            const int areg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0);
            const int alane = (row & 7) * 4 + (k & 7) / 2;
            const float av = emu_bf16(W->a[alane][areg], k & 1);
            const int breg = k >= 8 ? 1 : 0;
            const int blane = col * 4 + (k & 7) / 2;
            const float bv = emu_bf16(W->b[blane][breg], k & 1);
            sum += av * bv;
        }
        out[i] = sum;
    }
    W->bar.arrive_and_wait();
    for (int i = 0; i < 4; i++) d[i] = out[i];
}

static inline void emu_ldmatrix(emu_u32 (&r)[4], const void* p, bool trans)
{
    emu::Warp* W = emu::warp;
    const int l = emu::lane;
    if (((uintptr_t)p & 15) != 0) { fprintf(stderr, "ldmatrix: row address not 16-byte aligned\n"); abort(); }
    W->ptr[l] = p;
    W->bar.arrive_and_wait();
    for (int i = 0; i < 4; i++)
    {
        uint16_t lo, hi;
        if (!trans)
        {
            const uint16_t* row = (const uint16_t*)W->ptr[i * 8 + l / 4];
            lo = row[2 * (l % 4)]; hi = row[2 * (l % 4) + 1];
        }
        else
        {
            lo = ((const uint16_t*)W->ptr[i * 8 + 2 * (l % 4)])[l / 4];
            hi = ((const uint16_t*)W->ptr[i * 8 + 2 * (l % 4) + 1])[l / 4];
        }
        r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
    }
    W->bar.arrive_and_wait();
}
static inline void ldmatrix_x4(emu_u32 (&r)[4], const void* p) { emu_ldmatrix(r, p, false); }
static inline void ldmatrix_x4_trans(emu_u32 (&r)[4], const void* p) { emu_ldmatrix(r, p, true); }
// cp.async is deferred: the destination is poisoned (bf16 NaN) at issue time and filled only when a
// cp.async.wait_group retires its group, so a read that forgets to wait sees NaN.
struct EmuCopy { void* dst; const void* src; bool valid; };
inline thread_local std::vector<EmuCopy> emu_open_group;
inline thread_local std::vector<std::vector<EmuCopy>> emu_groups;
static inline void emu_retire(const std::vector<EmuCopy>& g)
{
    for (const auto& c : g) { if (c.valid) memcpy(c.dst, c.src, 16); else memset(c.dst, 0, 16); }
}
static inline void cp_async_16(void* smem, const void* gmem, bool valid)
{
    if (((uintptr_t)smem & 15) || ((uintptr_t)gmem & 15)) { fprintf(stderr, "cp.async: address not 16-byte aligned\n"); abort(); }
    uint16_t* d = (uint16_t*)smem;
    for (int i = 0; i < 8; i++) d[i] = 0x7fc1;
    emu_open_group.push_back({ smem, gmem, valid });
}
static inline void cp_async_commit() { emu_groups.push_back(emu_open_group); emu_open_group.clear(); }
template <int N> static inline void cp_async_wait()
{
    while ((int)emu_groups.size() > N) { emu_retire(emu_groups.front()); emu_groups.erase(emu_groups.begin()); }
}

namespace emu {
template <class K, class... A>
void launch(K kernel, dim3 grid, dim3 block, A... args)
{
    gridDim = grid;
    blockDim = block;
    const int n = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++)
            {
                Block B;
                B.bar = std::make_unique<std::barrier<>>(n);
                B.flag[0] = 0; B.flag[1] = 0;
                for (int w = 0; w * 32 < n; w++) B.warps.push_back(std::make_unique<Warp>(std::min(32, n - w * 32)));
                std::vector<std::thread> threads;
                threads.reserve(n);
                for (int tid = 0; tid < n; tid++)
                    threads.emplace_back([&, tid, bx, by, bz] {
                        threadIdx = dim3(tid % block.x, (tid / block.x) % block.y, tid / (block.x * block.y));
                        blockIdx = dim3(bx, by, bz);
                        blk = &B;
                        warp = B.warps[tid / 32].get();
                        lane = tid % 32;
                        epoch = 0;
                        emu_groups.clear(); emu_open_group.clear();
                        kernel(args...);
                        B.bar->arrive_and_drop();
                        warp->bar.arrive_and_drop();
                    });
                for (auto& t : threads) t.join();
            }
}
}
