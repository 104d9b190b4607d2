#include "emu.h"
#include "elementwise.cu"
#include "util.h"

// prelude checks: Philox KAT (Random123 kat_vectors) and bf16 rounding
static u32x4 g_out[3];
extern "C" void philox_kat_kernel()
{
    if (threadIdx.x != 0) return;
    g_out[0] = philox4x32_10(0, 0, 0, 0, 0, 0);
    g_out[1] = philox4x32_10(0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu);
    g_out[2] = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
}

int main()
{
    Rng rng(1);
    printf("prelude\n");
    emu::launch(philox_kat_kernel, dim3(1), dim3(32));
    const uint32_t kat[3][4] = { { 0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u },
                                 { 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu },
                                 { 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u } };
    for (int i = 0; i < 3; i++)
    {
        bool ok = g_out[i].x == kat[i][0] && g_out[i].y == kat[i][1] && g_out[i].z == kat[i][2] && g_out[i].w == kat[i][3];
        printf("  philox KAT %d: %08x %08x %08x %08x %s\n", i, g_out[i].x, g_out[i].y, g_out[i].z, g_out[i].w, ok ? "ok" : "FAIL");
        if (!ok) g_fail++;
    }
    // stream_uniform vs independent port, random coordinates
    {
        int bad = 0;
        for (int i = 0; i < 20000; i++)
        {
            uint64_t seed = rng.g(); uint32_t step = rng.g(), mb = rng.g(), tag = rng.integer(1, 3), lane = rng.g(), e = rng.g();
            RandomStream s = make_random_stream(seed, step, mb);
            float a = stream_uniform(s, tag, lane, e);
            float u4[4]; stream_uniform4(s, tag, lane, e >> 2, u4);
            float want = ref_uniform(seed, step, mb, tag, lane, e);
            if (a != want || u4[e & 3] != want) bad++;
        }
        printf("  stream_uniform vs port: %s\n", bad ? "FAIL" : "ok"); if (bad) g_fail++;
    }
    // bf16 rounding: exhaustive over a sample of bit patterns incl. specials
    {
        int bad = 0;
        std::vector<uint32_t> pats = { 0, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffffffffu, 0x7f7fffffu, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x00000001u };
        for (int i = 0; i < 200000; i++) pats.push_back((uint32_t)rng.g());
        for (uint32_t u : pats)
        {
            float f; memcpy(&f, &u, 4);
            if (f32_to_bf16(f).bits != h_f2bf(f)) bad++;
        }
        printf("  f32_to_bf16 vs BFloat16.cs port: %s\n", bad ? "FAIL" : "ok"); if (bad) g_fail++;
    }

    printf("elementwise\n");
    for (int n : { 1, 7, 64, 1000, 4099 })
    {
        BfBuf a(n), b(n), o(n); a.randn(rng); b.randn(rng);
        std::vector<float> f(n), f2(n, NAN);
        for (int i = 0; i < n; i++) f[i] = rng.normal();
        std::vector<double> want(n);
        // cast bf16 -> f32 (aligned and misaligned views)
        emu::launch(cast_bf16_to_f32, dim3(3), dim3(64), f2.data(), (const bf16*)a.p(), (i64)n);
        for (int i = 0; i < n; i++) want[i] = a.at(i);
        check(("cast_bf16_to_f32 n=" + std::to_string(n)).c_str(), n, [&](size_t i) { return (double)f2[i]; }, want, 0, 0);
        o.poison();
        emu::launch(cast_f32_to_bf16, dim3(2), dim3(32), o.p(), (const float*)f.data(), (i64)n);
        for (int i = 0; i < n; i++) want[i] = h_bf2f(h_f2bf(f[i]));
        check(("cast_f32_to_bf16 n=" + std::to_string(n)).c_str(), n, [&](size_t i) { return (double)o.at(i); }, want, 0, 0);
        if (n > 1)
        {
            BfBuf o2(n); o2.poison();
            emu::launch(cast_f32_to_bf16, dim3(2), dim3(32), o2.p() + 1, (const float*)f.data() + 1, (i64)(n - 1));
            for (int i = 1; i < n; i++) want[i - 1] = h_bf2f(h_f2bf(f[i]));
            check("cast_f32_to_bf16 misaligned", n - 1, [&](size_t i) { return (double)o2.at(i + 1); }, want, 0, 0);
        }
        o.poison();
        emu::launch(add_bf16, dim3(2), dim3(64), o.p(), (const bf16*)a.p(), (const bf16*)b.p(), (i64)n);
        for (int i = 0; i < n; i++) want[i] = h_bf2f(h_f2bf(a.at(i) + b.at(i)));
        check("add_bf16", n, [&](size_t i) { return (double)o.at(i); }, want, 0, 0);
        emu::launch(add_bf16, dim3(2), dim3(64), a.p(), (const bf16*)a.p(), (const bf16*)b.p(), (i64)n);
        check("add_bf16 in place", n, [&](size_t i) { return (double)a.at(i); }, want, 0, 0);
        {
            // mul_bf16 with a 0/1 mask (explicit Trans-PEFT masks) and with general values, aligned and in place
            BfBuf mask(n), prod(n); prod.poison();
            for (int i = 0; i < n; i++) mask.set(i, (rng.g() & 3) == 0 ? 0.0f : 1.0f);
            emu::launch(mul_bf16, dim3(2), dim3(64), prod.p(), (const bf16*)a.p(), (const bf16*)mask.p(), (i64)n);
            for (int i = 0; i < n; i++) want[i] = a.at(i) * mask.at(i);
            check("mul_bf16 mask", n, [&](size_t i) { return (double)prod.at(i); }, want, 0, 0);
            for (int i = 0; i < n; i++) want[i] = h_bf2f(h_f2bf(a.at(i) * b.at(i)));
            emu::launch(mul_bf16, dim3(3), dim3(32), a.p(), (const bf16*)a.p(), (const bf16*)b.p(), (i64)n);
            check("mul_bf16 in place", n, [&](size_t i) { return (double)a.at(i); }, want, 0, 0);
            if (n > 1)
            {
                BfBuf o3(n); o3.poison();
                emu::launch(mul_bf16, dim3(2), dim3(64), o3.p() + 1, (const bf16*)b.p() + 1, (const bf16*)mask.p() + 1, (i64)(n - 1));
                for (int i = 1; i < n; i++) want[i - 1] = b.at(i) * mask.at(i);
                check("mul_bf16 misaligned", n - 1, [&](size_t i) { return (double)o3.at(i + 1); }, want, 0, 0);
            }
        }
        float out = NAN;
        emu::launch(reduce_sum_f32, dim3(1), dim3(256), &out, (const float*)f.data(), (i64)n, 0.25f);
        double tot = 0; for (float x : f) tot += x;
        std::vector<double> w1 = { tot * 0.25 };
        check("reduce_sum_f32", 1, [&](size_t) { return (double)out; }, w1, 1e-5, 1e-5);
    }
    for (auto [rows, cols] : { std::pair{ 5, 3 }, std::pair{ 37, 70 }, std::pair{ 64, 32 } })
    {
        BfBuf y(rows * cols), bias(cols); y.randn(rng); bias.randn(rng);
        std::vector<double> want(rows * cols);
        for (int i = 0; i < rows * cols; i++) want[i] = h_bf2f(h_f2bf(y.at(i) + bias.at(i % cols)));
        emu::launch(bias_add_bf16, dim3(3), dim3(64), y.p(), (const bf16*)bias.p(), rows, cols);
        check("bias_add_bf16", rows * cols, [&](size_t i) { return (double)y.at(i); }, want, 0, 0);
        std::vector<float> dst(cols, 1.0f);
        emu::launch(column_sum_bf16, dim3((cols + 31) / 32), dim3(32, 16), dst.data(), (const bf16*)y.p(), rows, cols);
        std::vector<double> cw(cols, 1.0);
        for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) cw[c] += y.at(r * cols + c);
        check("column_sum_bf16 (+=)", cols, [&](size_t i) { return (double)dst[i]; }, cw, 1e-5, 1e-5);
    }
    {
        const int B = 2, Tq = 3, Tcap = 9, pos = 4, row = 12;
        BfBuf cache(B * Tcap * row), src(B * Tq * row); cache.randn(rng); src.randn(rng);
        std::vector<double> want(cache.size());
        for (size_t i = 0; i < cache.size(); i++) want[i] = cache.at(i);
        for (int b = 0; b < B; b++) for (int t = 0; t < Tq; t++) for (int c = 0; c < row; c++) want[((size_t)b * Tcap + pos + t) * row + c] = src.at(((size_t)b * Tq + t) * row + c);
        emu::launch(kv_cache_write, dim3(2), dim3(32), cache.p(), (const bf16*)src.p(), B, Tq, Tcap, pos, row);
        check("kv_cache_write", cache.size(), [&](size_t i) { return (double)cache.at(i); }, want, 0, 0);
    }
    return finish("test_elementwise");
}
