// Test helpers for the emulated kernels: host bf16 rounding (as IO/BFloat16.cs), random inputs,
// NaN-poisoned outputs, tolerance checks, and an independent port of RandomStream.cs.
#pragma once
#include <random>
#include <vector>
#include <string>
#include <cstdio>
#include <cmath>
#include <cstdint>
#include <cstring>

static int g_fail = 0;
static uint16_t h_f2bf(float f)
{
    uint32_t u; memcpy(&u, &f, 4);
    if (std::isnan(f)) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}
static float h_bf2f(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return f; }

struct Rng
{
    std::mt19937_64 g;
    explicit Rng(uint64_t s) : g(s) {}
    float uni(float a, float b) { return std::uniform_real_distribution<float>(a, b)(g); }
    float normal(float s = 1.0f) { return std::normal_distribution<float>(0.0f, s)(g); }
    int integer(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(g); }
};

// bf16 buffer with a float mirror of its exact values
struct BfBuf
{
    std::vector<bf16> d;
    explicit BfBuf(size_t n = 0) : d(n) {}
    size_t size() const { return d.size(); }
    float at(size_t i) const { return h_bf2f(d[i].bits); }
    void set(size_t i, float v) { d[i].bits = h_f2bf(v); }
    bf16* p() { return d.data(); }
    void randn(Rng& r, float s = 1.0f) { for (auto& x : d) x.bits = h_f2bf(r.normal(s)); }
    void poison() { for (auto& x : d) x.bits = 0x7fc1; }
};

// max |got - want| / (atol + rtol |want|) must be <= 1; NaN never passes
template <class G>
static void check(const char* what, size_t n, G got, const std::vector<double>& want, double atol, double rtol)
{
    double worst = 0; size_t wi = 0; bool nan = false;
    for (size_t i = 0; i < n; i++)
    {
        const double g = got(i);
        if (std::isnan(g) != std::isnan(want[i])) { nan = true; wi = i; break; }
        if (std::isnan(g)) continue;
        const double e = std::fabs(g - want[i]) / (atol + rtol * std::fabs(want[i]));
        if (e > worst) { worst = e; wi = i; }
    }
    const bool ok = !nan && worst <= 1.0;
    if (!ok) g_fail++;
    printf("  %-48s %s  worst=%.3f at %zu (got %.6g want %.6g)%s\n", what, ok ? "ok  " : "FAIL", worst, wi,
           n ? (double)got(wi) : 0.0, n ? want[wi] : 0.0, nan ? " NaN mismatch" : "");
}

static int finish(const char* name)
{
    printf("%s: %s\n", name, g_fail ? "FAILED" : "all passed");
    return g_fail ? 1 : 0;
}

// Independent port of TransPeft/Philox4x32.cs + RandomStream.cs for references
static void ref_philox(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++)
    {
        if (round > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1, n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;
        c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
    }
}
static float ref_uniform(uint64_t seed, uint32_t step, uint32_t mb, uint32_t tag, uint32_t lane, uint32_t element)
{
    uint32_t c[4] = { element >> 2, lane, step, (tag << 24) | (mb & 0xFFFFFF) };
    ref_philox(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    return (float)(c[element & 3] >> 8) * (1.0f / 16777216.0f);
}
