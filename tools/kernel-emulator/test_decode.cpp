#include "emu.h"
#include "decode.cu"
#include "util.h"
// decode.cu under ASan: rope_rows at per-row positions, kv_append into a slot arena (nothing else written), and
// decode_attention of each row over its slot's keys 0..pos against a double-precision reference.
int main()
{
    Rng rng(9);
    for (auto [nh, nkv, d] : { std::tuple{ 4, 2, 8 }, std::tuple{ 2, 1, 64 }, std::tuple{ 4, 4, 6 } })
    {
        const int N = 3, S = 3, cap = 40;
        const int slot[N] = { 2, 0, 1 }, pos[N] = { 39, 0, 17 };
        const int kvd = nkv * d, qd = nh * d;
        printf("nh=%d nkv=%d d=%d\n", nh, nkv, d);
        BfBuf q(N * qd), k(N * kvd), v(N * kvd), kc(S * cap * kvd), vc(S * cap * kvd), out(N * qd);
        q.randn(rng); k.randn(rng); v.randn(rng); kc.randn(rng); vc.randn(rng);
        std::vector<double> inv(d / 2);
        for (int j = 0; j < d / 2; j++) inv[j] = 1.0 / std::pow(10000.0, 2.0 * j / d);
        BfBuf q0 = q;
        emu::launch(rope_rows, dim3(2), dim3(64), q.p(), (const double*)inv.data(), (const i32*)pos, N, nh, d);
        std::vector<double> want(q.size());
        for (int n = 0; n < N; n++) for (int h = 0; h < nh; h++) for (int j = 0; j < d / 2; j++)
        {
            size_t base = ((size_t)n * nh + h) * d;
            double a = (double)pos[n] * inv[j], c = std::cos(a), s = std::sin(a);
            double x0 = q0.at(base + j), x1 = q0.at(base + j + d / 2);
            want[base + j] = x0 * c - x1 * s; want[base + j + d / 2] = x1 * c + x0 * s;
        }
        check("rope_rows", q.size(), [&](size_t i) { return (double)q.at(i); }, want, 1e-3, 8e-3);

        BfBuf kc0 = kc, vc0 = vc;
        emu::launch(kv_append, dim3(3), dim3(32), kc.p(), vc.p(), (const bf16*)k.p(), (const bf16*)v.p(), (const i32*)slot, (const i32*)pos, N, cap, kvd);
        bool exact = true;
        for (size_t i = 0; i < kc.size(); i++)
        {
            size_t row = i / kvd, c = i % kvd;
            int s = (int)(row / cap), p = (int)(row % cap), n = -1;
            for (int r = 0; r < N; r++) if (slot[r] == s && pos[r] == p) n = r;
            uint16_t wk = n < 0 ? kc0.d[i].bits : k.d[(size_t)n * kvd + c].bits, wv = n < 0 ? vc0.d[i].bits : v.d[(size_t)n * kvd + c].bits;
            exact &= kc.d[i].bits == wk && vc.d[i].bits == wv;
        }
        check("kv_append writes exactly the rows' slots and positions", 1, [&](size_t) { return exact ? 1.0 : 0.0; }, { 1.0 }, 0, 0);

        const float scale = 1.0f / std::sqrt((float)d);
        emu::launch(decode_attention, dim3((N + 3) / 4, nh), dim3(128), out.p(), (const bf16*)q.p(), (const bf16*)kc.p(), (const bf16*)vc.p(),
                    (const i32*)slot, (const i32*)pos, N, cap, nh, nkv, d, scale);
        std::vector<double> ref(out.size());
        for (int n = 0; n < N; n++) for (int h = 0; h < nh; h++)
        {
            const int g = h / (nh / nkv);
            std::vector<double> sc(pos[n] + 1);
            double mx = -1e300;
            for (int j = 0; j <= pos[n]; j++)
            {
                double dot = 0;
                for (int c = 0; c < d; c++) dot += (double)q.at(((size_t)n * nh + h) * d + c) * kc.at((((size_t)slot[n] * cap + j) * nkv + g) * d + c);
                sc[j] = dot * scale; mx = std::max(mx, sc[j]);
            }
            double sum = 0;
            for (double& x : sc) { x = std::exp(x - mx); sum += x; }
            for (int c = 0; c < d; c++)
            {
                double acc = 0;
                for (int j = 0; j <= pos[n]; j++) acc += sc[j] / sum * vc.at((((size_t)slot[n] * cap + j) * nkv + g) * d + c);
                ref[((size_t)n * nh + h) * d + c] = acc;
            }
        }
        check("decode_attention", out.size(), [&](size_t i) { return (double)out.at(i); }, ref, 1e-2, 1e-2);
    }
    return finish("test_decode");
}
