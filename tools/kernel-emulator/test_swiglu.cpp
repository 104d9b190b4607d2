#include "emu.h"
#include "swiglu.cu"
#include "util.h"
static double sig(double z) { return 1.0 / (1.0 + std::exp(-z)); }
int main()
{
    Rng rng(5);
    for (auto [N, I, p] : { std::tuple{ 14, 176, 0.2f }, std::tuple{ 9, 37, 0.3f }, std::tuple{ 5, 8, 0.0f }, std::tuple{ 3, 5, 0.5f } })
    {
        printf("N=%d I=%d p_mask=%g\n", N, I, p);
        const u64 seed = 0x123456789abcdefULL; const u32 step = 7, mb = 3, layer = 1;
        StepParams sp{};   // the per-step values live in (device) memory, as a replayed graph reads them
        sp.mask_seed = seed; sp.mask_step = step; sp.mask_micro_batch = mb; sp.p_mask = p;
        sp.dropout_seed = ~seed; sp.dropout_step = step + 1; sp.loss_scale = 3;   // not the mask's: must not be used
        const StepParams* st = &sp;
        BfBuf g(N * I), u(N * I), a(N * I), da(N * I), dg(N * I), du(N * I);
        g.randn(rng, 2); u.randn(rng); da.randn(rng);
        a.poison();
        emu::launch(swiglu_forward, dim3(3), dim3(64), a.p(), (const bf16*)g.p(), (const bf16*)u.p(), N, I, st, layer);
        std::vector<double> wa(N * I), wdg(N * I), wdu(N * I);
        int masked = 0;
        for (int e = 0; e < N * I; e++)
        {
            double keep = ref_uniform(seed, step, mb, 1, layer, e) < p ? 0 : 1; masked += keep == 0;
            double z = g.at(e), s = sig(z);
            wa[e] = z * s * u.at(e) * keep;
            wdg[e] = da.at(e) * keep * u.at(e) * s * (1 + z * (1 - s));
            wdu[e] = da.at(e) * keep * z * s;
        }
        printf("  masked %d of %d\n", masked, N * I);
        check("swiglu_forward", N * I, [&](size_t i) { return (double)a.at(i); }, wa, 1e-3, 8e-3);
        int zero_mismatch = 0;
        for (int e = 0; e < N * I; e++) if ((wa[e] == 0) != (a.at(e) == 0)) zero_mismatch++;
        printf("  mask pattern identical: %s\n", zero_mismatch ? "FAIL" : "ok"); if (zero_mismatch) g_fail++;
        {   // no StepParams: no mask, whatever p would have been
            BfBuf a0(N * I); a0.poison();
            emu::launch(swiglu_forward, dim3(3), dim3(64), a0.p(), (const bf16*)g.p(), (const bf16*)u.p(), N, I, (const StepParams*)nullptr, layer);
            std::vector<double> w0(N * I);
            for (int e = 0; e < N * I; e++) { double z = g.at(e); w0[e] = z * sig(z) * u.at(e); }
            check("swiglu_forward without StepParams", N * I, [&](size_t i) { return (double)a0.at(i); }, w0, 1e-3, 8e-3);
        }
        dg.poison(); du.poison();
        emu::launch(swiglu_backward, dim3(2), dim3(32), dg.p(), du.p(), (const bf16*)da.p(), (const bf16*)g.p(), (const bf16*)u.p(), N, I, st, layer);
        check("swiglu_backward dgate", N * I, [&](size_t i) { return (double)dg.at(i); }, wdg, 1e-3, 8e-3);
        check("swiglu_backward dup", N * I, [&](size_t i) { return (double)du.at(i); }, wdu, 1e-3, 8e-3);
        // in place: dgate aliases gate, dup aliases up
        BfBuf g2 = g, u2 = u;
        emu::launch(swiglu_backward, dim3(2), dim3(32), g2.p(), u2.p(), (const bf16*)da.p(), (const bf16*)g2.p(), (const bf16*)u2.p(), N, I, st, layer);
        check("swiglu_backward in place dgate", N * I, [&](size_t i) { return (double)g2.at(i); }, wdg, 1e-3, 8e-3);
        check("swiglu_backward in place dup", N * I, [&](size_t i) { return (double)u2.at(i); }, wdu, 1e-3, 8e-3);
        if (N * I > 2)
        {   // misaligned views (scalar path): rows start at element 1
            BfBuf a2(N * I); a2.poison();
            int n1 = N * I - 1;
            emu::launch(swiglu_forward, dim3(2), dim3(32), a2.p() + 1, (const bf16*)g.p() + 1, (const bf16*)u.p() + 1, 1, n1, st, layer);
            std::vector<double> w2(n1);
            for (int e = 0; e < n1; e++) { double keep = ref_uniform(seed, step, mb, 1, layer, e) < p ? 0 : 1; double z = g.at(e + 1); w2[e] = z * sig(z) * u.at(e + 1) * keep; }
            check("swiglu_forward misaligned", n1, [&](size_t i) { return (double)a2.at(i + 1); }, w2, 1e-3, 8e-3);
        }
    }
    return finish("test_swiglu");
}
