#include "emu.h"
#include "rmsnorm.cu"
#include "util.h"
int main()
{
    Rng rng(2);
    for (auto [N, C] : { std::pair{ 3, 5 }, std::pair{ 19, 64 }, std::pair{ 9, 200 }, std::pair{ 4, 1024 } })
    {
        printf("N=%d C=%d\n", N, C);
        const float eps = 1e-5f;
        BfBuf x(N * C), y(N * C), w(C), out(N * C), res(N * C), dout(N * C), dinp(N * C);
        x.randn(rng); y.randn(rng); w.randn(rng); dout.randn(rng); dinp.randn(rng);
        std::vector<float> rstd(N, NAN);
        out.poison();
        const int blocks = (N + 7) / 8;
        emu::launch(rmsnorm_forward, dim3(blocks), dim3(256), out.p(), rstd.data(), (const bf16*)x.p(), (const bf16*)w.p(), N, C, eps);
        std::vector<double> wo(N * C), wr(N);
        for (int n = 0; n < N; n++)
        {
            double ss = 0; for (int c = 0; c < C; c++) ss += (double)x.at(n * C + c) * x.at(n * C + c);
            double r = 1.0 / std::sqrt(ss / C + eps); wr[n] = r;
            for (int c = 0; c < C; c++) wo[n * C + c] = x.at(n * C + c) * r * w.at(c);
        }
        check("rmsnorm_forward out", N * C, [&](size_t i) { return (double)out.at(i); }, wo, 1e-3, 8e-3);
        check("rmsnorm_forward rstd", N, [&](size_t i) { return (double)rstd[i]; }, wr, 0, 1e-5);
        // fused residual, in place into x
        BfBuf xr = x;
        out.poison();
        emu::launch(rmsnorm_residual_forward, dim3(blocks), dim3(256), xr.p(), out.p(), rstd.data(), (const bf16*)xr.p(), (const bf16*)y.p(), (const bf16*)w.p(), N, C, eps);
        std::vector<double> wh(N * C);
        for (int n = 0; n < N; n++)
        {
            double ss = 0;
            for (int c = 0; c < C; c++) { float h = h_bf2f(h_f2bf(x.at(n * C + c) + y.at(n * C + c))); wh[n * C + c] = h; ss += (double)h * h; }
            double r = 1.0 / std::sqrt(ss / C + eps); wr[n] = r;
            for (int c = 0; c < C; c++) wo[n * C + c] = wh[n * C + c] * r * w.at(c);
        }
        check("rmsnorm_residual_forward residual (exact)", N * C, [&](size_t i) { return (double)xr.at(i); }, wh, 0, 0);
        check("rmsnorm_residual_forward out", N * C, [&](size_t i) { return (double)out.at(i); }, wo, 1e-3, 8e-3);
        check("rmsnorm_residual_forward rstd", N, [&](size_t i) { return (double)rstd[i]; }, wr, 0, 1e-5);
        // backward: reference from x, rstd computed in double
        emu::launch(rmsnorm_forward, dim3(blocks), dim3(256), out.p(), rstd.data(), (const bf16*)x.p(), (const bf16*)w.p(), N, C, eps);
        std::vector<double> wd(N * C), wd0(N * C), wdw(C, 0.5);
        for (int n = 0; n < N; n++)
        {
            double ss = 0; for (int c = 0; c < C; c++) ss += (double)x.at(n * C + c) * x.at(n * C + c);
            double r = 1.0 / std::sqrt(ss / C + eps), dot = 0;
            for (int c = 0; c < C; c++) dot += (double)dout.at(n * C + c) * w.at(c) * x.at(n * C + c);
            for (int c = 0; c < C; c++)
            {
                double g = r * dout.at(n * C + c) * w.at(c) - x.at(n * C + c) * r * r * r / C * dot;
                wd0[n * C + c] = g; wd[n * C + c] = dinp.at(n * C + c) + g;
                wdw[c] += (double)dout.at(n * C + c) * x.at(n * C + c) * r;
            }
        }
        BfBuf di = dinp;
        emu::launch(rmsnorm_backward, dim3(blocks), dim3(256), di.p(), (const bf16*)dout.p(), (const bf16*)x.p(), (const bf16*)w.p(), (const float*)rstd.data(), N, C, 1);
        check("rmsnorm_backward dinp +=", N * C, [&](size_t i) { return (double)di.at(i); }, wd, 2e-3, 8e-3);
        di.poison();
        emu::launch(rmsnorm_backward, dim3(blocks), dim3(256), di.p(), (const bf16*)dout.p(), (const bf16*)x.p(), (const bf16*)w.p(), (const float*)rstd.data(), N, C, 0);
        check("rmsnorm_backward dinp =", N * C, [&](size_t i) { return (double)di.at(i); }, wd0, 2e-3, 8e-3);
        std::vector<float> dw(C, 0.5f);
        emu::launch(rmsnorm_backward_weight, dim3((C + 31) / 32), dim3(32, 16), dw.data(), (const bf16*)dout.p(), (const bf16*)x.p(), (const float*)rstd.data(), N, C);
        check("rmsnorm_backward_weight +=", C, [&](size_t i) { return (double)dw[i]; }, wdw, 1e-4, 1e-4);
    }
    return finish("test_rmsnorm");
}
