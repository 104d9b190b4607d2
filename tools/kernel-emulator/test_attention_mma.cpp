#include "emu.h"
#include "attention_mma.cu"
// (flash_attention_backward_preprocess lives in attention.cu: Dsum is computed on the host here)
#include "util.h"
#include "attn_ref.h"
typedef void (*Fwd)(bf16*, float*, const bf16*, const bf16*, const bf16*, int, int, int, int, int, int, int, float);
typedef void (*Dq)(bf16*, const bf16*, const bf16*, const bf16*, const bf16*, const float*, const float*, int, int, int, int, int, float);
typedef void (*Dkv)(bf16*, bf16*, const bf16*, const bf16*, const bf16*, const bf16*, const float*, const float*, int, int, int, int, int, float);
int main()
{
    Rng rng(10);
    struct Case { int B, Tq, Tkv, Tcap, nh, nkv, d; bool backward; };
    std::vector<Case> cases = { Case{ 2, 37, 37, 37, 4, 2, 64, true }, Case{ 1, 130, 130, 130, 2, 1, 64, true }, Case{ 1, 1, 70, 80, 2, 2, 64, false },
                                Case{ 1, 65, 130, 130, 2, 1, 64, false }, Case{ 1, 70, 70, 70, 2, 2, 128, true }, Case{ 1, 33, 33, 33, 4, 1, 128, true },
                                Case{ 1, 16, 100, 128, 2, 1, 128, false } };
    for (Case cs : cases)
    {
        printf("B=%d Tq=%d Tkv=%d Tcap=%d nh=%d nkv=%d d=%d (tensor cores)\n", cs.B, cs.Tq, cs.Tkv, cs.Tcap, cs.nh, cs.nkv, cs.d);
        const int B = cs.B, Tq = cs.Tq, Tkv = cs.Tkv, Tcap = cs.Tcap, nh = cs.nh, nkv = cs.nkv, d = cs.d;
        Fwd fwd = d == 64 ? flash_attention_forward_d64 : flash_attention_forward_d128;
        Dq fdq = d == 64 ? flash_attention_backward_dq_d64 : flash_attention_backward_dq_d128;
        Dkv fdkv = d == 64 ? flash_attention_backward_dkdv_d64 : flash_attention_backward_dkdv_d128;
        BfBuf q((size_t)B * Tq * nh * d), k((size_t)B * Tcap * nkv * d), v(k.size()), o(q.size()), g(q.size());
        q.randn(rng); k.randn(rng); v.randn(rng); g.randn(rng);
        const float scale = 1.0f / std::sqrt((float)d);
        AttnRef ref{ B, Tq, Tkv, Tcap, nh, nkv, d, scale };
        ref.run(q, k, v, cs.backward ? &g : nullptr);
        std::vector<float> lse((size_t)B * nh * Tq, NAN);
        o.poison();
        emu::launch(fwd, dim3((Tq + 63) / 64, nh, B), dim3(128), o.p(), lse.data(), (const bf16*)q.p(), (const bf16*)k.p(), (const bf16*)v.p(), B, Tq, Tkv, Tcap, nh, nkv, d, scale);
        // P is rounded to bf16 before P*V: allow ~1% of the output scale
        check("forward O", o.size(), [&](size_t i) { return (double)o.at(i); }, ref.O, 1e-2 * max_abs(ref.O), 1e-2);
        check("forward lse", lse.size(), [&](size_t i) { return (double)lse[i]; }, ref.lse, 1e-5, 1e-5);
        if (!cs.backward) continue;
        std::vector<float> D((size_t)B * nh * Tq);
        for (int b = 0; b < B; b++) for (int t = 0; t < Tq; t++) for (int h = 0; h < nh; h++)
        {
            double a = 0; for (int c = 0; c < d; c++) { size_t i = (((size_t)b * Tq + t) * nh + h) * d + c; a += (double)o.at(i) * g.at(i); }
            D[((size_t)b * nh + h) * Tq + t] = (float)a;
        }
        BfBuf dq(q.size()), dk(k.size()), dv(k.size()); dq.poison(); dk.poison(); dv.poison();
        emu::launch(fdq, dim3((Tq + 63) / 64, nh, B), dim3(128), dq.p(), (const bf16*)q.p(), (const bf16*)k.p(), (const bf16*)v.p(), (const bf16*)g.p(), (const float*)lse.data(), (const float*)D.data(), B, Tq, nh, nkv, d, scale);
        emu::launch(fdkv, dim3((Tq + 63) / 64, nkv, B), dim3(128), dk.p(), dv.p(), (const bf16*)q.p(), (const bf16*)k.p(), (const bf16*)v.p(), (const bf16*)g.p(), (const float*)lse.data(), (const float*)D.data(), B, Tq, nh, nkv, d, scale);
        check("backward dq", dq.size(), [&](size_t i) { return (double)dq.at(i); }, ref.dq, 1e-2 * max_abs(ref.dq), 1e-2);
        check("backward dk", dk.size(), [&](size_t i) { return (double)dk.at(i); }, ref.dk, 1e-2 * max_abs(ref.dk), 1e-2);
        check("backward dv", dv.size(), [&](size_t i) { return (double)dv.at(i); }, ref.dv, 1e-2 * max_abs(ref.dv), 1e-2);
    }
    return finish("test_attention_mma");
}
