#include "emu.h"
#include "rope.cu"
#include "util.h"
int main()
{
    Rng rng(4);
    for (auto [B, T, H, d, off] : { std::tuple{ 2, 7, 4, 16, 0 }, std::tuple{ 1, 37, 2, 8, 0 }, std::tuple{ 2, 3, 3, 64, 100000 } })
    {
        printf("B=%d T=%d heads=%d d=%d pos_offset=%d\n", B, T, H, d, off);
        BfBuf x(B * T * H * d); x.randn(rng);
        std::vector<double> inv(d / 2);
        for (int j = 0; j < d / 2; j++) inv[j] = 1.0 / std::pow(10000.0, 2.0 * j / d);
        BfBuf y = x;
        emu::launch(rope_forward, dim3(3), dim3(64), y.p(), (const double*)inv.data(), B, T, H, d, off);
        std::vector<double> want(x.size()), back(x.size());
        for (int b = 0; b < B; b++) for (int t = 0; t < T; t++) for (int h = 0; h < H; h++) for (int j = 0; j < d / 2; j++)
        {
            size_t base = (((size_t)b * T + t) * H + h) * d;
            double a = (double)(t + off) * inv[j], c = std::cos(a), s = std::sin(a);
            double x0 = x.at(base + j), x1 = x.at(base + j + d / 2);
            want[base + j] = x0 * c - x1 * s; want[base + j + d / 2] = x1 * c + x0 * s;
            double y0 = y.at(base + j), y1 = y.at(base + j + d / 2);   // backward applied to y: R(-a) y
            back[base + j] = y0 * c + y1 * s; back[base + j + d / 2] = y1 * c - y0 * s;
        }
        check("rope_forward", x.size(), [&](size_t i) { return (double)y.at(i); }, want, 1e-3, 8e-3);
        emu::launch(rope_backward, dim3(5), dim3(32), y.p(), (const double*)inv.data(), B, T, H, d, off);
        check("rope_backward (R(-angle) of the output)", x.size(), [&](size_t i) { return (double)y.at(i); }, back, 1e-3, 8e-3);
    }
    return finish("test_rope");
}
