#include "emu.h"
#include "cross_entropy.cu"
#include "util.h"
int main()
{
    Rng rng(7);
    for (auto [N, V] : { std::pair{ 14, 97 }, std::pair{ 6, 1024 }, std::pair{ 5, 3000 } })
    {
        printf("N=%d V=%d\n", N, V);
        BfBuf lg(N * V); lg.randn(rng, 3);
        std::vector<float> lf(N * V); for (auto& x : lf) x = rng.normal(3);
        std::vector<int> tg(N); for (auto& t : tg) t = rng.integer(0, V - 1);
        tg[1] = -100; tg[N - 1] = V + 5;  // ignored, invalid
        const float ls = 1.0f / 11;
        StepParams sp{}; sp.loss_scale = ls; sp.p_mask = 0.5f;   // the loss scale lives in (device) memory
        std::vector<double> wl(N), wg(N * V), wlf(N), wgf(N * V);
        auto ref = [&](auto get, std::vector<double>& L, std::vector<double>& G) {
            for (int n = 0; n < N; n++)
            {
                if (tg[n] == -100) { L[n] = 0; for (int v = 0; v < V; v++) G[n * V + v] = 0; continue; }
                if (tg[n] < 0 || tg[n] >= V) { L[n] = NAN; for (int v = 0; v < V; v++) G[n * V + v] = NAN; continue; }
                double m = -1e300; for (int v = 0; v < V; v++) m = std::max(m, (double)get(n * V + v));
                double s = 0; for (int v = 0; v < V; v++) s += std::exp(get(n * V + v) - m);
                double lse = m + std::log(s);
                L[n] = lse - get(n * V + tg[n]);
                for (int v = 0; v < V; v++) G[n * V + v] = (std::exp(get(n * V + v) - lse) - (v == tg[n])) * ls;
            }
        };
        ref([&](size_t i) { return (double)lg.at(i); }, wl, wg);
        ref([&](size_t i) { return (double)lf[i]; }, wlf, wgf);
        // argmax before overwrite
        std::vector<int> amf(N, -1);
        emu::launch(argmax_rows_f32, dim3(4), dim3(64), amf.data(), (const float*)lf.data(), N, V);
        std::vector<double> wamf(N);
        for (int n = 0; n < N; n++)
        {
            int bf = 0; for (int v = 1; v < V; v++) if (lf[n * V + v] > lf[n * V + bf]) bf = v;
            wamf[n] = bf;
        }
        check("argmax_rows_f32", N, [&](size_t i) { return (double)amf[i]; }, wamf, 0, 0);
        std::vector<float> loss(N, -1);
        emu::launch(cross_entropy_fused_bf16, dim3(std::min(N, 3)), dim3(256), lg.p(), (const i32*)tg.data(), loss.data(), N, V, (const StepParams*)&sp);
        check("cross_entropy_fused_bf16 loss", N, [&](size_t i) { return (double)loss[i]; }, wl, 1e-5, 1e-5);
        check("cross_entropy_fused_bf16 dlogits", N * V, [&](size_t i) { return (double)lg.at(i); }, wg, 1e-6, 8e-3);
        std::vector<float> loss2(N, -1);
        emu::launch(cross_entropy_fused_f32, dim3(N), dim3(1024), lf.data(), (const i32*)tg.data(), loss2.data(), N, V, (const StepParams*)&sp);
        check("cross_entropy_fused_f32 loss", N, [&](size_t i) { return (double)loss2[i]; }, wlf, 1e-5, 1e-5);
        check("cross_entropy_fused_f32 dlogits", N * V, [&](size_t i) { return (double)lf[i]; }, wgf, 1e-8, 1e-4);
    }
    // ties
    {
        std::vector<float> lg(2 * 40, 0.0f); lg[7] = 1.0f; lg[30] = 1.0f; lg[40 + 39] = 2.0f;
        std::vector<int> am(2, -1);
        emu::launch(argmax_rows_f32, dim3(1), dim3(32), am.data(), (const float*)lg.data(), 2, 40);
        std::vector<double> w = { 7, 39 };
        check("argmax tie -> lowest index", 2, [&](size_t i) { return (double)am[i]; }, w, 0, 0);
    }
    return finish("test_cross_entropy");
}
