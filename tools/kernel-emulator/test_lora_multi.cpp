#include "emu.h"
#include "lora_multi.cu"
#include "util.h"
// lora_multi.cu: BGMV and SGMV on a padded pool of adapters with different ranks, against a double-precision
// reference per row; rows of slot -1 must keep y bit for bit and leave t unwritten (still the poison).
int main()
{
    Rng rng(12);
    struct Case { std::vector<int> slots; int in, out; };
    std::vector<Case> cases = {
        { { 0, 0, 0, 1, 1, -1, 2, 2, 2, 2 }, 40, 27 },
        { { 1, 0, 1, 0, -1, 2, -1, 1 }, 96, 130 },
        { std::vector<int>(37, 1), 70, 65 },
        { { -1, -1, 2 }, 33, 8 },
    };
    const int ranks[3] = { 4, 72, 1 };
    const float scalings[3] = { 2.0f, 0.5f, 1.0f };
    const int S = 3, rmax = 72;
    for (auto& c : cases)
    {
        const int N = (int)c.slots.size(), in = c.in, out = c.out;
        printf("N=%d in=%d out=%d\n", N, in, out);
        BfBuf x(N * in), A((size_t)S * rmax * in), B((size_t)S * out * rmax), y0(N * out);
        x.randn(rng); y0.randn(rng);
        for (int s = 0; s < S; s++)
            for (int j = 0; j < rmax; j++)
            {
                for (int k = 0; k < in; k++) A.set(((size_t)s * rmax + j) * in + k, j < ranks[s] ? rng.normal(0.2f) : 0.0f);
                for (int o = 0; o < out; o++) B.set(((size_t)s * out + o) * rmax + j, j < ranks[s] ? rng.normal(0.2f) : 0.0f);
            }
        std::vector<double> want(N * out);
        for (int n = 0; n < N; n++)
        {
            const int s = c.slots[n];
            for (int o = 0; o < out; o++)
            {
                double acc = 0;
                if (s >= 0)
                    for (int j = 0; j < ranks[s]; j++)
                    {
                        double t = 0;
                        for (int k = 0; k < in; k++) t += (double)x.at(n * in + k) * A.at(((size_t)s * rmax + j) * in + k);
                        acc += t * B.at(((size_t)s * out + o) * rmax + j);
                    }
                want[n * out + o] = s < 0 ? y0.at(n * out + o) : h_bf2f(h_f2bf((float)(y0.at(n * out + o) + scalings[s] * acc)));
            }
        }
        std::vector<int> seg_start, seg_slot;
        int longest = 0;
        for (int n = 0; n < N; n++)
            if (n == 0 || c.slots[n] != c.slots[n - 1]) { seg_start.push_back(n); seg_slot.push_back(c.slots[n]); }
        seg_start.push_back(N);
        const int nseg = (int)seg_slot.size();
        for (int i = 0; i < nseg; i++) longest = std::max(longest, seg_start[i + 1] - seg_start[i]);
        for (int sgmv = 0; sgmv < 2; sgmv++)
        {
            std::vector<float> t((size_t)N * rmax, NAN);
            BfBuf y = y0;
            if (sgmv)
            {
                emu::launch(sgmv_shrink, dim3(2, nseg), dim3(128), t.data(), (const bf16*)x.p(), (const bf16*)A.p(), (const i32*)seg_start.data(), (const i32*)seg_slot.data(), nseg, in, rmax, (i64)rmax * in);
                emu::launch(sgmv_expand, dim3((out + 63) / 64, (longest + 15) / 16, nseg), dim3(128), y.p(), (const float*)t.data(), (const bf16*)B.p(), scalings, (const i32*)seg_start.data(), (const i32*)seg_slot.data(), nseg, out, rmax, (i64)out * rmax, 1);
            }
            else
            {
                emu::launch(bgmv_shrink, dim3(3), dim3(128), t.data(), (const bf16*)x.p(), (const bf16*)A.p(), (const i32*)c.slots.data(), N, in, rmax, (i64)rmax * in);
                emu::launch(bgmv_expand, dim3(2), dim3(64), y.p(), (const float*)t.data(), (const bf16*)B.p(), scalings, (const i32*)c.slots.data(), N, out, rmax, (i64)out * rmax, 1);
            }
            check(sgmv ? "sgmv shrink + expand" : "bgmv shrink + expand", N * out, [&](size_t i) { return (double)y.at(i); }, want, 2e-3, 8e-3);
            bool untouched = true;
            for (int n = 0; n < N; n++)
                if (c.slots[n] < 0)
                {
                    for (int o = 0; o < out; o++) untouched &= y.d[n * out + o].bits == y0.d[n * out + o].bits;
                    for (int j = 0; j < rmax; j++) untouched &= std::isnan(t[(size_t)n * rmax + j]);
                }
            if (!untouched) { g_fail++; printf("  base-only rows were touched\n"); }
        }
    }
    return finish("test_lora_multi");
}
