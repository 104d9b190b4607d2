#include "emu.h"
#include "bert.cu"
#include "util.h"
// BERT kernels against double-precision references: LayerNorm with bias (forward, backward), exact GELU with
// the Trans-PEFT mask (forward, backward), bidirectional attention with a key padding mask.
int main()
{
    Rng rng(7);
    for (auto [N, C] : { std::pair{ 3, 5 }, std::pair{ 9, 384 }, std::pair{ 4, 100 } })
    {
        printf("layernorm N=%d C=%d\n", N, C);
        const float eps = 1e-12f;
        BfBuf x(N * C), w(C), bias(C), out(N * C), dout(N * C), dinp(N * C);
        x.randn(rng, 2); w.randn(rng); bias.randn(rng); dout.randn(rng); dinp.randn(rng);
        std::vector<float> mean(N, NAN), rstd(N, NAN);
        out.poison();
        const int blocks = (N + 7) / 8;
        emu::launch(layernorm_forward, dim3(blocks), dim3(256), out.p(), mean.data(), rstd.data(), (const bf16*)x.p(), (const bf16*)w.p(), (const bf16*)bias.p(), N, C, eps);
        std::vector<double> wo(N * C), wm(N), wr(N), wd(N * C), wd0(N * C);
        for (int n = 0; n < N; n++)
        {
            double mu = 0; for (int c = 0; c < C; c++) mu += x.at(n * C + c); mu /= C;
            double var = 0; for (int c = 0; c < C; c++) { double d = x.at(n * C + c) - mu; var += d * d; } var /= C;
            double r = 1 / std::sqrt(var + eps); wm[n] = mu; wr[n] = r;
            double mg = 0, mgx = 0;
            for (int c = 0; c < C; c++)
            {
                double xh = (x.at(n * C + c) - mu) * r, g = (double)dout.at(n * C + c) * w.at(c);
                wo[n * C + c] = xh * w.at(c) + bias.at(c); mg += g / C; mgx += g * xh / C;
            }
            for (int c = 0; c < C; c++)
            {
                double xh = (x.at(n * C + c) - mu) * r, g = (double)dout.at(n * C + c) * w.at(c);
                wd0[n * C + c] = r * (g - mg - xh * mgx); wd[n * C + c] = dinp.at(n * C + c) + wd0[n * C + c];
            }
        }
        check("layernorm_forward out", N * C, [&](size_t i) { return (double)out.at(i); }, wo, 1e-2, 8e-3);
        check("layernorm_forward mean", N, [&](size_t i) { return (double)mean[i]; }, wm, 1e-5, 1e-5);
        check("layernorm_forward rstd", N, [&](size_t i) { return (double)rstd[i]; }, wr, 0, 1e-4);
        BfBuf di = dinp;
        emu::launch(layernorm_backward, dim3(blocks), dim3(256), di.p(), (const bf16*)dout.p(), (const bf16*)x.p(), (const bf16*)w.p(), (const float*)mean.data(), (const float*)rstd.data(), N, C, 1);
        check("layernorm_backward dinp +=", N * C, [&](size_t i) { return (double)di.at(i); }, wd, 1e-2, 1e-2);
        di.poison();
        emu::launch(layernorm_backward, dim3(blocks), dim3(256), di.p(), (const bf16*)dout.p(), (const bf16*)x.p(), (const bf16*)w.p(), (const float*)mean.data(), (const float*)rstd.data(), N, C, 0);
        check("layernorm_backward dinp =", N * C, [&](size_t i) { return (double)di.at(i); }, wd0, 1e-2, 1e-2);
    }
    for (float p : { 0.0f, 0.3f })
    {
        const int N = 7, I = 37; const uint64_t seed = 0x1234567890ull; const uint32_t step = 5, mb = 1, layer = 2;
        printf("gelu N=%d I=%d p_mask=%.1f\n", N, I, p);
        BfBuf u(N * I), a(N * I), da(N * I), du(N * I);
        u.randn(rng, 2); da.randn(rng);
        a.poison();
        emu::launch(gelu_forward, dim3(3), dim3(64), a.p(), (const bf16*)u.p(), N, I, p, seed, step, mb, layer);
        std::vector<double> wa(N * I), wdu(N * I);
        for (int e = 0; e < N * I; e++)
        {
            double keep = p > 0 && ref_uniform(seed, step, mb, 1, layer, e) < p ? 0 : 1, z = u.at(e);
            double cdf = 0.5 * (1 + std::erf(z / std::sqrt(2.0))), pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * M_PI);
            wa[e] = keep * z * cdf; wdu[e] = da.at(e) * keep * (cdf + z * pdf);
        }
        check("gelu_forward", N * I, [&](size_t i) { return (double)a.at(i); }, wa, 1e-3, 8e-3);
        du.poison();
        emu::launch(gelu_backward, dim3(2), dim3(32), du.p(), (const bf16*)da.p(), (const bf16*)u.p(), N, I, p, seed, step, mb, layer);
        check("gelu_backward", N * I, [&](size_t i) { return (double)du.at(i); }, wdu, 1e-3, 8e-3);
    }
    for (auto [B, T, H, D] : { std::array{ 2, 5, 2, 32 }, std::array{ 3, 9, 3, 48 }, std::array{ 1, 4, 1, 128 } })
    {
        printf("masked_attention B=%d T=%d H=%d D=%d\n", B, T, H, D);
        const int HD = H * D; const float scale = 1.0f / std::sqrt((float)D);
        BfBuf q(B * T * HD), k(B * T * HD), v(B * T * HD), o(B * T * HD);
        q.randn(rng); k.randn(rng); v.randn(rng); o.poison();
        std::vector<int32_t> valid(B);
        for (int b = 0; b < B; b++) valid[b] = b == 0 ? T : 1 + b * (T - 1) / B;
        std::vector<float> lse(B * H * T, NAN);
        const int warps = B * H * T;
        emu::launch(masked_attention_forward, dim3((warps + 3) / 4), dim3(128), o.p(), lse.data(), (const bf16*)q.p(), (const bf16*)k.p(), (const bf16*)v.p(), (const int32_t*)valid.data(), B, T, H, D, scale);
        std::vector<double> wo(B * T * HD), wl(B * H * T);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < T; i++)
                {
                    std::vector<double> s(valid[b]); double m = -1e300, sum = 0;
                    for (int j = 0; j < valid[b]; j++)
                    {
                        double d = 0; for (int e = 0; e < D; e++) d += (double)q.at((b * T + i) * HD + h * D + e) * k.at((b * T + j) * HD + h * D + e);
                        s[j] = d * scale; m = std::max(m, s[j]);
                    }
                    for (int j = 0; j < valid[b]; j++) sum += std::exp(s[j] - m);
                    wl[(b * H + h) * T + i] = m + std::log(sum);
                    for (int e = 0; e < D; e++)
                    {
                        double acc = 0; for (int j = 0; j < valid[b]; j++) acc += std::exp(s[j] - m) / sum * v.at((b * T + j) * HD + h * D + e);
                        wo[(b * T + i) * HD + h * D + e] = acc;
                    }
                }
        check("masked_attention_forward out", B * T * HD, [&](size_t i) { return (double)o.at(i); }, wo, 1e-2, 8e-3);
        check("masked_attention_forward lse", B * H * T, [&](size_t i) { return (double)lse[i]; }, wl, 1e-4, 1e-4);
    }
    return finish("test_bert");
}
