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
