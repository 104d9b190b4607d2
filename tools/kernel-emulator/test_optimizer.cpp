#include "emu.h"
#include "optimizer.cu"
#include "util.h"
int main()
{
    Rng rng(8);
    const int n = 1003;
    std::vector<float> p(n), g(n), m(n), v(n);
    for (int i = 0; i < n; i++) { p[i] = rng.normal(); g[i] = rng.normal(0.1f); m[i] = rng.normal(0.01f); v[i] = std::fabs(rng.normal(0.001f)); }
    const float lr = 3e-4f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, gs = 0.5f; const int step = 3;
    std::vector<double> wp(n), wm(n), wv(n), wpb(n);
    for (int i = 0; i < n; i++)
    {
        double gg = (double)g[i] * gs;
        double mm = b1 * (double)m[i] + (1 - b1) * gg, vv = b2 * (double)v[i] + (1 - b2) * gg * gg;
        double bc1 = 1 - std::pow((double)b1, step), bc2 = 1 - std::pow((double)b2, step);
        double pp = p[i] * (1 - (double)lr * wd) - (lr / bc1) * mm / (std::sqrt(vv) / std::sqrt(bc2) + eps);
        wp[i] = pp; wm[i] = mm; wv[i] = vv; wpb[i] = h_bf2f(h_f2bf((float)pp));
    }
    BfBuf pb(n); pb.poison();
    float dev_scale = gs;
    emu::launch(adamw_step, dim3(3), dim3(64), p.data(), pb.p(), (const float*)g.data(), m.data(), v.data(), (i64)n, lr, b1, b2, eps, wd, step, (const float*)&dev_scale);
    check("adamw_step param", n, [&](size_t i) { return (double)p[i]; }, wp, 1e-7, 1e-6);
    check("adamw_step m", n, [&](size_t i) { return (double)m[i]; }, wm, 1e-9, 1e-6);
    check("adamw_step v", n, [&](size_t i) { return (double)v[i]; }, wv, 1e-12, 1e-6);
    check("adamw_step param_bf16", n, [&](size_t i) { return (double)pb.at(i); }, wpb, 0, 8e-3);
    // SGD: plain, then with momentum over two steps (the first step seeds the buffer)
    for (float mu : { 0.0f, 0.9f })
    {
        std::vector<float> q = p, buf(n, NAN);
        std::vector<double> wq(q.begin(), q.end()), wb(n);
        for (int s = 0; s < 2; s++)
        {
            for (int i = 0; i < n; i++)
            {
                double dd = g[i] * 0.5 + 0.01 * wq[i];
                if (mu > 0) { dd = s == 0 ? dd : mu * wb[i] + dd; wb[i] = dd; }
                wq[i] -= 0.1 * dd;
            }
            emu::launch(sgd_step, dim3(2), dim3(128), q.data(), (bf16*)nullptr, (const float*)g.data(), mu > 0 ? buf.data() : (float*)nullptr,
                        (i64)n, 0.1f, mu, 0.01f, s == 0 ? 1 : 0, (const float*)&dev_scale);
        }
        check(mu > 0 ? "sgd_step momentum, 2 steps" : "sgd_step, 2 steps", n, [&](size_t i) { return (double)q[i]; }, wq, 1e-6, 1e-5);
    }
    // global norm over two tensors with clipping
    std::vector<float> partial(5, NAN), a(777), b(64);
    for (auto& x : a) x = rng.normal();
    for (auto& x : b) x = rng.normal(3);
    emu::launch(global_norm_squared, dim3(5), dim3(64), partial.data(), (const float*)a.data(), (i64)a.size(), 0);
    emu::launch(global_norm_squared, dim3(5), dim3(64), partial.data(), (const float*)b.data(), (i64)b.size(), 1);
    float norm = NAN, clip = NAN;
    emu::launch(global_norm_finalize, dim3(1), dim3(32), &norm, &clip, (const float*)partial.data(), 5, 1.0f);
    double ss = 0; for (float x : a) ss += (double)x * x; for (float x : b) ss += (double)x * x;
    std::vector<double> wn = { std::sqrt(ss) }, wc = { std::sqrt(ss) > 1.0 ? 1.0 / (std::sqrt(ss) + 1e-6) : 1.0 };
    check("global_norm", 1, [&](size_t) { return (double)norm; }, wn, 0, 1e-6);
    check("global_norm clip_scale", 1, [&](size_t) { return (double)clip; }, wc, 0, 1e-6);
    emu::launch(global_norm_finalize, dim3(1), dim3(32), &norm, &clip, (const float*)partial.data(), 5, 1e9f);
    std::vector<double> one = { 1.0 };
    check("global_norm clip_scale (no clip)", 1, [&](size_t) { return (double)clip; }, one, 0, 0);
    a[3] = INFINITY;
    emu::launch(global_norm_squared, dim3(5), dim3(64), partial.data(), (const float*)a.data(), (i64)a.size(), 0);
    emu::launch(global_norm_finalize, dim3(1), dim3(64), &norm, &clip, (const float*)partial.data(), 5, 1.0f);
    std::vector<double> inf = { INFINITY };
    check("global_norm non-finite: norm inf", 1, [&](size_t) { return (double)norm; }, inf, 0, 0);
    check("global_norm non-finite: clip 1 (as GradientClipping)", 1, [&](size_t) { return (double)clip; }, one, 0, 0);
    return finish("test_optimizer");
}
