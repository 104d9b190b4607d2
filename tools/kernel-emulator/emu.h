// Host emulation of the CUDA subset used by kernels/*.cu, to check kernel logic on a machine without a
// GPU (see README.md): each CUDA thread is a fiber on the launching OS thread, blocks run one after another,
// __syncthreads and warp collectives are barriers between fibers, and mma.sync, ldmatrix and cp.async follow the
// PTX ISA's fragment layouts. Include this before a kernel file; the prelude then skips its inline PTX.
#pragma once
#include <cmath>
#include <math.h>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <ucontext.h>
#include <sys/mman.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif
#include <vector>
#include <atomic>
#include <memory>
#include <algorithm>
#include <functional>
#include <tuple>

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

template <class T> static inline T min(T a, T b) { return a < b ? a : b; }
template <class T> static inline T max(T a, T b) { return a > b ? a : b; }

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline float __uint_as_float(unsigned i) { float f; memcpy(&f, &i, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
namespace emu {
/// A kernel fault (a trap, a misaligned ldmatrix/cp.async, a deadlock): thrown inside the faulting fiber, caught at
/// the bottom of its stack, and the launch stops. Test programs then print it and abort; the C ABI (emu_abi.h)
/// returns it to the caller as the launch's error.
struct Fault { char message[256]; };
[[noreturn]] inline void fail(const char* message)
{
    Fault f;
    snprintf(f.message, sizeof f.message, "%s", message);
    throw f;
}
}
[[noreturn]] static inline void __trap() { emu::fail("__trap() (a kernel's own check failed)"); }

// ---------------------------------------------------------------------------------------------------------------
// Threads as fibers. All CUDA threads of a block are ucontext fibers on the ONE OS thread that called launch();
// blocks run one after another. A fiber runs until it reaches a barrier (__syncthreads, __syncwarp, a shuffle,
// mma/ldmatrix), then yields; the scheduler resumes the fibers round-robin, and a waiting fiber continues once its
// barrier's generation has moved on. No OS thread is created per CUDA thread, so a launch costs two context
// switches per thread and barrier instead of a futex round trip (the old one-thread-per-CUDA-thread emulator was
// tens of times slower). A full round in which no fiber arrives anywhere and none finishes is a deadlock (a
// collective reached by only part of its threads): the launch fails with an emu::Fault that says so.
// AddressSanitizer is told about every stack switch (its fiber API), so stack accesses stay checked.
// ---------------------------------------------------------------------------------------------------------------
namespace emu {
struct Barrier
{
    int count = 0, arrived = 0;
    unsigned generation = 0;
};
struct Warp
{
    Barrier bar;
    uint64_t slot[32];
    uint32_t a[32][4], b[32][2];
    float c[32][4];
    const void* ptr[32];
};
struct Block
{
    Barrier bar;
    int flag[2] = { 0, 0 };
    std::vector<Warp> warps;
};
struct EmuCopy { void* dst; const void* src; bool valid; };
#if defined(__x86_64__)
// A context switch is six callee-saved registers and the stack pointer (System V ABI). glibc's swapcontext would
// also make a sigprocmask system call, and ASan's interceptor of it clears the shadow of the whole target stack:
// together that made the fibers barely faster than OS threads.
extern "C" void emu_switch(void** save_sp, void* to_sp);
asm(R"(
    .text
    .weak emu_switch
    .hidden emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
)");
struct Context { void* sp = nullptr; };
inline void switch_to(Context& from, Context& to) { emu_switch(&from.sp, to.sp); }
/// A fresh context that enters `entry` (which must never return) on the stack [stack, stack + bytes).
inline void make_context(Context& c, char* stack, size_t bytes, void (*entry)())
{
    // After `ret` pops entry, rsp = top - 8, as right after a call: the ABI's 16-byte alignment at function entry.
    void** sp = (void**)((((uintptr_t)stack + bytes) & ~(uintptr_t)15) - 64);
    for (int i = 0; i < 6; i++) sp[i] = nullptr; // r15 r14 r13 r12 rbx rbp
    sp[6] = (void*)entry;
    sp[7] = nullptr;
    c.sp = sp;
}
#else
struct Context { ucontext_t uc; };
inline void switch_to(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
inline void make_context(Context& c, char* stack, size_t bytes, void (*entry)())
{
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
#endif

struct Fiber
{
    Context ctx;
    dim3 tid;
    int lane = 0, epoch = 0;
    Warp* warp = nullptr;
    bool done = false;
    char* stack = nullptr;
    void* fake_stack = nullptr;
    std::vector<EmuCopy> open_group;              // cp.async issued, not yet committed
    std::vector<std::vector<EmuCopy>> groups;    // committed groups, oldest first
};
inline Block* blk;
inline Fiber* cur;
inline bool progress;
inline Context scheduler;
inline const void* scheduler_stack;
inline size_t scheduler_stack_size;
inline unsigned char* dynamic_smem;
inline Fault fault;
inline bool faulted;

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN_SWITCH_START(save, bottom, size) __sanitizer_start_switch_fiber(save, bottom, size)
#define EMU_ASAN_SWITCH_FINISH(save, bottom, size) __sanitizer_finish_switch_fiber(save, bottom, size)
#else
#define EMU_ASAN_SWITCH_START(save, bottom, size) ((void)0)
#define EMU_ASAN_SWITCH_FINISH(save, bottom, size) ((void)0)
#endif

/// Fiber → scheduler.
inline void yield()
{
    Fiber* f = cur;
    EMU_ASAN_SWITCH_START(&f->fake_stack, scheduler_stack, scheduler_stack_size);
    switch_to(f->ctx, scheduler);
    EMU_ASAN_SWITCH_FINISH(f->fake_stack, &scheduler_stack, &scheduler_stack_size);
}

inline void arrive_and_wait(Barrier& b)
{
    progress = true;
    const unsigned g = b.generation;
    if (++b.arrived == b.count) { b.arrived = 0; b.generation++; return; }
    while (b.generation == g) yield();
}

/// A thread that has exited no longer counts (as on the GPU, where exited threads do not hold up bar.sync).
inline void drop(Barrier& b)
{
    b.count--;
    if (b.arrived > 0 && b.arrived == b.count) { b.arrived = 0; b.generation++; progress = true; }
}
}

#define threadIdx (emu::cur->tid)
inline dim3 blockIdx, blockDim, gridDim;

static inline void __syncthreads() { emu::arrive_and_wait(emu::blk->bar); }
static inline void __syncwarp(unsigned = 0xffffffffu) { emu::arrive_and_wait(emu::cur->warp->bar); }
static inline int __syncthreads_or(int p)
{
    const int e = emu::cur->epoch++ & 1;
    if (p) emu::blk->flag[e] |= 1;
    __syncthreads();
    const int r = emu::blk->flag[e];
    if (threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0) emu::blk->flag[e ^ 1] = 0;
    __syncthreads();
    return r;
}

template <class T>
static inline T emu_exchange(T v, int src)
{
    emu::Warp* W = emu::cur->warp;
    uint64_t raw = 0;
    memcpy(&raw, &v, sizeof(T));
    W->slot[emu::cur->lane] = raw;
    emu::arrive_and_wait(W->bar);
    const uint64_t r = W->slot[src & 31];
    emu::arrive_and_wait(W->bar);
    T out;
    memcpy(&out, &r, sizeof(T));
    return out;
}
template <class T> static inline T __shfl_xor_sync(unsigned, T v, int m) { return emu_exchange(v, emu::cur->lane ^ m); }
template <class T> static inline T __shfl_sync(unsigned, T v, int s) { return emu_exchange(v, s); }
template <class T> static inline T __shfl_down_sync(unsigned, T v, int d) { return emu_exchange(v, emu::cur->lane + d < 32 ? emu::cur->lane + d : emu::cur->lane); }

typedef unsigned int emu_u32;

static inline float emu_bf16(uint32_t reg, int half) { return __uint_as_float(half ? (reg & 0xffff0000u) : (reg << 16)); }

static inline void mma_bf16_16816(float (&d)[4], const emu_u32 (&a)[4], const emu_u32 (&b)[2], const float (&c)[4])
{
    emu::Warp* W = emu::cur->warp;
    const int l = emu::cur->lane;
    for (int i = 0; i < 4; i++) { W->a[l][i] = a[i]; W->c[l][i] = c[i]; }
    W->b[l][0] = b[0]; W->b[l][1] = b[1];
    emu::arrive_and_wait(W->bar);
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
    emu::arrive_and_wait(W->bar);
    for (int i = 0; i < 4; i++) d[i] = out[i];
}

static inline void emu_ldmatrix(emu_u32 (&r)[4], const void* p, bool trans)
{
    emu::Warp* W = emu::cur->warp;
    const int l = emu::cur->lane;
    if (((uintptr_t)p & 15) != 0) emu::fail("ldmatrix: row address not 16-byte aligned");
    W->ptr[l] = p;
    emu::arrive_and_wait(W->bar);
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
    emu::arrive_and_wait(W->bar);
}
static inline void ldmatrix_x4(emu_u32 (&r)[4], const void* p) { emu_ldmatrix(r, p, false); }
static inline void ldmatrix_x4_trans(emu_u32 (&r)[4], const void* p) { emu_ldmatrix(r, p, true); }
// cp.async is deferred: the destination is poisoned (bf16 NaN) at issue time and filled only when a
// cp.async.wait_group retires its group, so a read that forgets to wait sees NaN.
using emu::EmuCopy;
static inline void emu_retire(const std::vector<EmuCopy>& g)
{
    for (const auto& c : g) { if (c.valid) memcpy(c.dst, c.src, 16); else memset(c.dst, 0, 16); }
}
static inline void cp_async_16(void* smem, const void* gmem, bool valid)
{
    if (((uintptr_t)smem & 15) || ((uintptr_t)gmem & 15)) emu::fail("cp.async: address not 16-byte aligned");
    uint16_t* d = (uint16_t*)smem;
    for (int i = 0; i < 8; i++) d[i] = 0x7fc1;
    emu::cur->open_group.push_back({ smem, gmem, valid });
}
static inline void cp_async_commit() { emu::cur->groups.push_back(emu::cur->open_group); emu::cur->open_group.clear(); }
template <int N> static inline void cp_async_wait()
{
    auto& groups = emu::cur->groups;
    while ((int)groups.size() > N) { emu_retire(groups.front()); groups.erase(groups.begin()); }
}

namespace emu {
/// Fiber stacks: mapped once and reused by every launch (untouched pages cost nothing), each with a guard page below
/// it so a stack overflow faults instead of corrupting its neighbour. ASan's instrumentation needs the generous size.
constexpr size_t kStackBytes = 256 << 10, kGuardBytes = 4096;
inline std::vector<char*> stacks;
inline char* stack_for(int i)
{
    while ((int)stacks.size() <= i)
    {
        void* m = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) { fprintf(stderr, "emu: cannot map a fiber stack\n"); abort(); } // no fiber to fail in yet
        mprotect(m, kGuardBytes, PROT_NONE);
        stacks.push_back((char*)m + kGuardBytes);
    }
    return stacks[i];
}

inline void (*body)(void*);
inline void* body_arg;

inline void fiber_main()
{
    EMU_ASAN_SWITCH_FINISH(nullptr, &scheduler_stack, &scheduler_stack_size);
    try { body(body_arg); }
    catch (const Fault& e) { fault = e; faulted = true; }
    Fiber* f = cur;
    f->done = true;
    progress = true;
    drop(blk->bar);
    drop(f->warp->bar);
    EMU_ASAN_SWITCH_START(nullptr, scheduler_stack, scheduler_stack_size); // this fiber's fake stack is gone
    switch_to(f->ctx, scheduler);
    __builtin_unreachable();
}

/// Launches serialize: static __shared__ arrays and the launch globals belong to one launch at a time.
inline std::mutex launch_mutex;

/// Runs `run(arg)` as every thread of a grid(×block) launch with `shared_bytes` of dynamic shared memory; what
/// emu::launch and the C ABI trampolines call. False when the launch faulted (the reason is in emu::fault).
inline bool launch_raw(dim3 grid, dim3 block, unsigned shared_bytes, void (*run)(void*), void* arg)
{
    std::lock_guard<std::mutex> hold(launch_mutex);
    std::vector<uint4> smem((shared_bytes + 15) / 16);
    dynamic_smem = (unsigned char*)smem.data();
    faulted = false;
    gridDim = grid;
    blockDim = block;
    body = run;
    body_arg = arg;
    const int n = block.x * block.y * block.z;
    std::vector<Fiber> fibers(n);
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++)
            {
                blockIdx = dim3(bx, by, bz);
                Block B;
                B.bar.count = n;
                B.warps.resize((n + 31) / 32);
                for (int w = 0; w * 32 < n; w++) B.warps[w].bar.count = std::min(32, n - w * 32);
                blk = &B;
                for (int t = 0; t < n; t++)
                {
                    Fiber& f = fibers[t];
                    f.tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
                    f.lane = t % 32;
                    f.epoch = 0;
                    f.warp = &B.warps[t / 32];
                    f.done = false;
                    f.stack = stack_for(t);
                    f.open_group.clear();
                    f.groups.clear();
                    make_context(f.ctx, f.stack, kStackBytes, fiber_main);
                }
                for (int live = n; live > 0;)
                {
                    progress = false;
                    for (int t = 0; t < n; t++)
                    {
                        Fiber& f = fibers[t];
                        if (f.done) continue;
                        cur = &f;
                        void* fake = nullptr;
                        EMU_ASAN_SWITCH_START(&fake, f.stack, kStackBytes);
                        switch_to(scheduler, f.ctx);
                        EMU_ASAN_SWITCH_FINISH(fake, nullptr, nullptr);
                        if (f.done) live--;
                        if (faulted) { cur = nullptr; return false; } // the block's other fibers are abandoned mid-kernel
                    }
                    if (!progress && live > 0)
                    {
                        snprintf(fault.message, sizeof fault.message, "deadlock in block (%u,%u,%u): %d of %d threads wait at a barrier "
                                 "that the others never reach (a __syncthreads, shuffle or mma in divergent code?)", bx, by, bz, live, n);
                        cur = nullptr;
                        return false;
                    }
                }
                cur = nullptr;
            }
    return true;
}

template <class K, class... A>
void launch(K kernel, dim3 grid, dim3 block, A... args)
{
    auto call = [&] { kernel(args...); };
    if (!launch_raw(grid, block, 0, [](void* p) { (*static_cast<decltype(call)*>(p))(); }, &call))
    {
        fprintf(stderr, "emu: launch failed: %s\n", fault.message);
        abort();
    }
}
}
