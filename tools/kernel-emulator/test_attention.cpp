#include "emu.h"
#include "attention.cu"
#include "util.h"
#include "attn_ref.h"
int main()
{
    Rng rng(9);
    struct Case { int B, Tq, Tkv, Tcap, nh, nkv, d; bool backward; };
    for (Case cs : { Case{ 2, 37, 37, 37, 4, 2, 8, true }, Case{ 1, 7, 7, 7, 4, 4, 16, true }, Case{ 1, 40, 40, 40, 2, 1, 256, true },
                     Case{ 2, 9, 9, 9, 3, 1, 6, true }, Case{ 2, 3, 10, 16, 4, 2, 16, false }, Case{ 1, 1, 33, 40, 2, 2, 64, false } })
    {
        printf("B=%d Tq=%d Tkv=%d Tcap=%d nh=%d nkv=%d d=%d\n", cs.B, cs.Tq, cs.Tkv, cs.Tcap, cs.nh, cs.nkv, cs.d);
        const int B = cs.B, Tq = cs.Tq, Tkv = cs.Tkv, Tcap = cs.Tcap, nh = cs.nh, nkv = cs.nkv, d = cs.d;
        BfBuf q((size_t)B * Tq * nh * d), k((size_t)B * Tcap * nkv * d), v(k.size()), o(q.size()), g(q.size());
        q.randn(rng); k.randn(rng); v.randn(rng); g.randn(rng);
        const float scale = 1.0f / std::sqrt((float)d);
        AttnRef ref{ B, Tq, Tkv, Tcap, nh, nkv, d, scale };
        ref.run(q, k, v, cs.backward ? &g : nullptr);
        std::vector<float> lse((size_t)B * nh * Tq, NAN);
        o.poison();
        emu::launch(flash_attention_forward, dim3((Tq + 3) / 4, nh, B), dim3(128), o.p(), lse.data(), (const bf16*)q.p(), (const bf16*)k.p(), (const bf16*)v.p(), B, Tq, Tkv, Tcap, nh, nkv, d, scale);
        check("forward O", o.size(), [&](size_t i) { return (double)o.at(i); }, ref.O, 1e-3, 8e-3);
        check("forward lse", lse.size(), [&](size_t i) { return (double)lse[i]; }, ref.lse, 1e-5, 1e-5);
        if (!cs.backward) continue;
        std::vector<float> D((size_t)B * nh * Tq, NAN);
        emu::launch(flash_attention_backward_preprocess, dim3((B * Tq * nh + 3) / 4), dim3(128), D.data(), (const bf16*)o.p(), (const bf16*)g.p(), B, Tq, nh, d);
        BfBuf dq(q.size()), dk(k.size()), dv(k.size()); dq.poison(); dk.poison(); dv.poison();
        emu::launch(flash_attention_backward_dq, dim3((Tq + 3) / 4, nh, B), dim3(128), dq.p(), (const bf16*)q.p(), (const bf16*)k.p(), (const bf16*)v.p(), (const bf16*)g.p(), (const float*)lse.data(), (const float*)D.data(), B, Tq, nh, nkv, d, scale);
        emu::launch(flash_attention_backward_dkdv, dim3((Tq + 3) / 4, nkv, B), dim3(128), dk.p(), dv.p(), (const bf16*)q.p(), (const bf16*)k.p(), (const bf16*)v.p(), (const bf16*)g.p(), (const float*)lse.data(), (const float*)D.data(), B, Tq, nh, nkv, d, scale);
        // gradients: per-tensor normalised rule (as the fixtures' tolerance), bf16 inputs to D (rounded O)
        check("backward dq", dq.size(), [&](size_t i) { return (double)dq.at(i); }, ref.dq, 1e-2 * max_abs(ref.dq), 8e-3);
        check("backward dk", dk.size(), [&](size_t i) { return (double)dk.at(i); }, ref.dk, 1e-2 * max_abs(ref.dk), 8e-3);
        check("backward dv", dv.size(), [&](size_t i) { return (double)dv.at(i); }, ref.dv, 1e-2 * max_abs(ref.dv), 8e-3);
    }
    return finish("test_attention");
}
