#include "emu.h"
#include "lora.cu"
#include "util.h"
int main()
{
    Rng rng(6);
    for (auto [N, in, r, p] : { std::tuple{ 14, 64, 4, 0.0f }, std::tuple{ 18, 64, 8, 0.1f }, std::tuple{ 70, 37, 5, 0.25f }, std::tuple{ 65, 96, 72, 0.05f }, std::tuple{ 3, 130, 64, 0.5f } })
    {
        printf("N=%d in=%d r=%d p=%g\n", N, in, r, p);
        const u64 seed = 42; const u32 step = 3, mb = 1, layer = 2, proj = 5, lane = layer * 8 + proj;
        StepParams sp{};   // the dropout stream lives in (device) memory, as a replayed graph reads it
        sp.dropout_seed = seed; sp.dropout_step = step; sp.dropout_micro_batch = mb;
        sp.mask_seed = ~seed; sp.mask_step = step + 1; sp.p_mask = 0.5f; sp.loss_scale = 3;   // not the dropout's
        const StepParams* st = &sp;
        BfBuf x(N * in), A(r * in), t(N * r), xd(N * in), acc(N * in);
        x.randn(rng); A.randn(rng, 0.2f); acc.randn(rng);
        std::vector<double> wxd(N * in), wacc(N * in), wt(N * r);
        std::vector<float> xdf(N * in);
        for (int e = 0; e < N * in; e++)
        {
            float v = x.at(e);
            float val = p > 0 ? (ref_uniform(seed, step, mb, 3, lane, e) < p ? 0.0f : v * (1.0f / (1.0f - p))) : v;
            xdf[e] = h_bf2f(h_f2bf(val)); wxd[e] = xdf[e];
            wacc[e] = h_bf2f(h_f2bf(acc.at(e) + val));
        }
        for (int n = 0; n < N; n++) for (int k = 0; k < r; k++) { double s = 0; for (int c = 0; c < in; c++) s += (double)xdf[n * in + c] * A.at(k * in + c); wt[n * r + k] = s; }
        xd.poison();
        emu::launch(lora_dropout_apply, dim3(3), dim3(64), xd.p(), (const bf16*)x.p(), N, in, p, st, layer, proj, 0);
        check("lora_dropout_apply (xd)", N * in, [&](size_t i) { return (double)xd.at(i); }, wxd, 0, 0);
        emu::launch(lora_dropout_apply, dim3(3), dim3(64), acc.p(), (const bf16*)x.p(), N, in, p, st, layer, proj, 1);
        check("lora_dropout_apply (accumulate)", N * in, [&](size_t i) { return (double)acc.at(i); }, wacc, 0, 0);
        t.poison();
        emu::launch(lora_dropout_shrink, dim3((N + 63) / 64, (r + 63) / 64), dim3(128), t.p(), (const bf16*)x.p(), (const bf16*)A.p(), N, in, r, p, st, layer, proj);
        check("lora_dropout_shrink", N * r, [&](size_t i) { return (double)t.at(i); }, wt, 2e-3, 8e-3);
    }
    return finish("test_lora");
}
