#include "emu.h"
#include "embedding.cu"
#include "util.h"
int main()
{
    Rng rng(3);
    for (auto [N, C, V] : { std::tuple{ 14, 64, 97 }, std::tuple{ 300, 13, 11 }, std::tuple{ 5, 8, 3 } })
    {
        printf("N=%d C=%d V=%d\n", N, C, V);
        BfBuf wte(V * C), out(N * C), dout(N * C); wte.randn(rng); dout.randn(rng);
        std::vector<int> ids(N); for (auto& i : ids) i = rng.integer(0, V - 1);
        ids[N - 1] = V; // invalid -> NaN row
        out.poison();
        emu::launch(embedding_forward, dim3(std::min(N, 7)), dim3(64), out.p(), (const i32*)ids.data(), (const bf16*)wte.p(), N, C, V);
        std::vector<double> want(N * C);
        for (int n = 0; n < N; n++) for (int c = 0; c < C; c++) want[n * C + c] = n == N - 1 ? NAN : wte.at(ids[n] * C + c);
        check("embedding_forward (last id invalid -> NaN)", N * C, [&](size_t i) { return (double)out.at(i); }, want, 0, 0);
        std::vector<float> dw(V * C, 0.25f);
        emu::launch(embedding_backward, dim3(std::min(V, 50)), dim3(128), dw.data(), (const bf16*)dout.p(), (const i32*)ids.data(), N, C, V);
        std::vector<double> wdw(V * C, 0.25);
        std::vector<float> fw(V * C, 0.25f);   // same order of fp32 additions -> exact
        for (int n = 0; n < N; n++) if (ids[n] < V) for (int c = 0; c < C; c++) { wdw[ids[n] * C + c] += dout.at(n * C + c); fw[ids[n] * C + c] += dout.at(n * C + c); }
        check("embedding_backward (+=)", V * C, [&](size_t i) { return (double)dw[i]; }, wdw, 1e-5, 1e-5);
        int diff = 0; for (int i = 0; i < V * C; i++) diff += dw[i] != fw[i];
        printf("  embedding_backward ascending-order fp32 sum bit-exact: %s\n", diff ? "FAIL" : "ok"); if (diff) g_fail++;
    }
    return finish("test_embedding");
}
