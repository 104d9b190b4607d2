#pragma once
// Double-precision reference attention (causal, GQA, KV-cache offset) and its backward.
struct AttnRef
{
    int B, Tq, Tkv, Tcap, nh, nkv, d; double scale;
    std::vector<double> O, lse, dq, dk, dv;
    void run(const BfBuf& q, const BfBuf& k, const BfBuf& v, const BfBuf* dout)
    {
        O.assign((size_t)B * Tq * nh * d, 0); lse.assign((size_t)B * nh * Tq, 0);
        if (dout) { dq.assign(O.size(), 0); dk.assign((size_t)B * Tcap * nkv * d, 0); dv.assign(dk.size(), 0); }
        const int off = Tkv - Tq, grp = nh / nkv;
        for (int b = 0; b < B; b++) for (int h = 0; h < nh; h++) for (int t = 0; t < Tq; t++)
        {
            const int g = h / grp;
            auto qi = [&](int c) { return (double)q.at((((size_t)b * Tq + t) * nh + h) * d + c); };
            auto kv = [&](const BfBuf& x, int j, int c) { return (double)x.at((((size_t)b * Tcap + j) * nkv + g) * d + c); };
            const int last = t + off;
            std::vector<double> s(last + 1), p(last + 1);
            double m = -1e300;
            for (int j = 0; j <= last; j++) { double a = 0; for (int c = 0; c < d; c++) a += qi(c) * kv(k, j, c); s[j] = a * scale; m = std::max(m, s[j]); }
            double sum = 0; for (int j = 0; j <= last; j++) { p[j] = std::exp(s[j] - m); sum += p[j]; }
            for (int j = 0; j <= last; j++) p[j] /= sum;
            lse[((size_t)b * nh + h) * Tq + t] = m + std::log(sum);
            const size_t orow = (((size_t)b * Tq + t) * nh + h) * d;
            for (int c = 0; c < d; c++) { double a = 0; for (int j = 0; j <= last; j++) a += p[j] * kv(v, j, c); O[orow + c] = a; }
            if (!dout) continue;
            double D = 0; for (int c = 0; c < d; c++) D += (double)dout->at(orow + c) * O[orow + c];
            for (int j = 0; j <= last; j++)
            {
                double dp = 0; for (int c = 0; c < d; c++) dp += (double)dout->at(orow + c) * kv(v, j, c);
                const double ds = p[j] * (dp - D);
                const size_t krow = (((size_t)b * Tcap + j) * nkv + g) * d;
                for (int c = 0; c < d; c++)
                {
                    dq[orow + c] += scale * ds * kv(k, j, c);
                    dk[krow + c] += scale * ds * qi(c);
                    dv[krow + c] += p[j] * dout->at(orow + c);
                }
            }
        }
    }
};
static double max_abs(const std::vector<double>& x) { double m = 0; for (double v : x) m = std::max(m, std::fabs(v)); return m; }
