using System.Buffers;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// The CPU backend's matrix multiply: C[M,N] = (accumulate ? C : 0) + alpha * A[M,K] · B[K,N], with A and B
/// addressed through arbitrary row/column strides so one routine serves x·Wᵀ (forward), dy·W (input
/// gradient) and dyᵀ·x (weight gradient) without transposing anything in memory.
///
/// Structure (the classic Goto/BLIS scheme): the K dimension is cut into KC-deep slabs and N into NC-wide
/// panels; each slab of B is packed into NR-wide column slivers and each MR-row strip of A into a
/// contiguous MR x KC block, so the 6x16 (fp32) micro-kernel streams both operands from L1/L2 with unit
/// stride and keeps its 12 accumulators in vector registers. Tiles of (MC rows x NC cols) run in parallel.
/// Generic over float (production) and double (finite-difference tests).
/// </summary>
internal static unsafe class Gemm
{
    private const int MR = 6;
    private const int KC = 256;
    private const int MC = 72;   // multiple of MR
    private const int NC = 512;

    /// <summary>out[N,OC] (+)= x[N,C] · W[OC,C]ᵀ — a linear layer's forward.</summary>
    public static void MatmulNT<T>(T* outp, T* x, T* w, int n, int c, int oc, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
        => Run(n, oc, c, x, c, 1, w, 1, c, outp, oc, accumulate, alpha);

    /// <summary>dx[N,C] (+)= dy[N,OC] · W[OC,C] — a linear layer's input gradient.</summary>
    public static void MatmulNN<T>(T* dx, T* dy, T* w, int n, int oc, int c, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
        => Run(n, c, oc, dy, oc, 1, w, c, 1, dx, c, accumulate, alpha);

    /// <summary>dW[OC,C] (+)= dy[N,OC]ᵀ · x[N,C] — a linear layer's weight gradient.</summary>
    public static void MatmulTN<T>(T* dw, T* dy, T* x, int n, int oc, int c, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
        => Run(oc, c, n, dy, 1, oc, x, c, 1, dw, c, accumulate, alpha);

    /// <summary>General strided form. A(m,k) = a[m*aRs + k*aCs], B(k,n) = b[k*bRs + n*bCs], C row-major with ldc.</summary>
    public static void Run<T>(int m, int n, int k, T* a, int aRs, int aCs, T* b, int bRs, int bCs,
        T* c, int ldc, bool accumulate, T alpha) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0)
        {
            if (!accumulate) for (int i = 0; i < m; i++) new Span<T>(c + (long)i * ldc, n).Clear();
            return;
        }
        int nr = 2 * Vector256<T>.Count;
        int mBlocks = (m + MC - 1) / MC, nBlocks = (n + NC - 1) / NC;
        int tiles = mBlocks * nBlocks;
        var job = new Job<T>(m, n, k, a, aRs, aCs, b, bRs, bCs, c, ldc, accumulate, alpha, nBlocks, nr);
        long flops = 2L * m * n * k;
        CpuParallel.For(tiles, job.RunTile, parallel: flops > 2_000_000);
    }

    private sealed class Job<T>(int m, int n, int k, T* a, int aRs, int aCs, T* b, int bRs, int bCs,
        T* c, int ldc, bool accumulate, T alpha, int nBlocks, int nr) where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void RunTile(int tile)
        {
            int m0 = tile / nBlocks * MC, n0 = tile % nBlocks * NC;
            int mc = Math.Min(MC, m - m0), nc = Math.Min(NC, n - n0);
            int slivers = (nc + nr - 1) / nr;
            int strips = (mc + MR - 1) / MR;
            T[] bufB = ArrayPool<T>.Shared.Rent(slivers * nr * KC);
            T[] bufA = ArrayPool<T>.Shared.Rent(strips * MR * KC);
            Span<T> edge = stackalloc T[MR * 32];
            try
            {
                fixed (T* pb = bufB)
                fixed (T* pa = bufA)
                {
                    for (int k0 = 0; k0 < k; k0 += KC)
                    {
                        int kc = Math.Min(KC, k - k0);
                        PackB(pb, k0, kc, n0, nc, nr);
                        PackA(pa, m0, mc, k0, kc);
                        bool acc = accumulate || k0 > 0;
                        for (int s = 0; s < strips; s++)
                        {
                            int rows = Math.Min(MR, mc - s * MR);
                            for (int j = 0; j < slivers; j++)
                            {
                                int cols = Math.Min(nr, nc - j * nr);
                                T* cTile = c + (long)(m0 + s * MR) * ldc + n0 + j * nr;
                                if (rows == MR && cols == nr)
                                    MicroKernel(kc, pa + s * MR * kc, pb + j * nr * kc, cTile, ldc, acc, alpha);
                                else
                                {
                                    fixed (T* e = edge)
                                    {
                                        for (int r = 0; r < MR; r++)
                                            for (int q = 0; q < nr; q++)
                                                e[r * nr + q] = acc && r < rows && q < cols ? cTile[(long)r * ldc + q] : T.Zero;
                                        MicroKernel(kc, pa + s * MR * kc, pb + j * nr * kc, e, nr, true, alpha);
                                        for (int r = 0; r < rows; r++)
                                            for (int q = 0; q < cols; q++)
                                                cTile[(long)r * ldc + q] = e[r * nr + q];
                                    }
                                }
                            }
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(bufB);
                ArrayPool<T>.Shared.Return(bufA);
            }
        }

        /// <summary>B[k0..k0+kc, n0..n0+nc] into slivers: sliver j holds kc rows of nr values (zero-padded).</summary>
        private void PackB(T* dst, int k0, int kc, int n0, int nc, int nrr)
        {
            int slivers = (nc + nrr - 1) / nrr;
            for (int j = 0; j < slivers; j++)
            {
                T* d = dst + j * nrr * kc;
                int cols = Math.Min(nrr, nc - j * nrr);
                for (int kk = 0; kk < kc; kk++)
                {
                    T* src = b + (long)(k0 + kk) * bRs + (long)(n0 + j * nrr) * bCs;
                    if (bCs == 1 && cols == nrr)
                        Buffer.MemoryCopy(src, d + kk * nrr, nrr * sizeof(T), nrr * sizeof(T));
                    else
                    {
                        int q = 0;
                        for (; q < cols; q++) d[kk * nrr + q] = src[(long)q * bCs];
                        for (; q < nrr; q++) d[kk * nrr + q] = T.Zero;
                    }
                }
            }
        }

        /// <summary>A[m0..m0+mc, k0..k0+kc] into MR-row strips: strip s holds kc columns of MR values (zero-padded).</summary>
        private void PackA(T* dst, int m0, int mc, int k0, int kc)
        {
            int strips = (mc + MR - 1) / MR;
            for (int s = 0; s < strips; s++)
            {
                T* d = dst + s * MR * kc;
                for (int r = 0; r < MR; r++)
                {
                    int row = s * MR + r;
                    if (row < mc)
                    {
                        T* src = a + (long)(m0 + row) * aRs + (long)k0 * aCs;
                        for (int kk = 0; kk < kc; kk++) d[kk * MR + r] = src[(long)kk * aCs];
                    }
                    else
                        for (int kk = 0; kk < kc; kk++) d[kk * MR + r] = T.Zero;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Fma<T>(Vector256<T> a, Vector256<T> b, Vector256<T> acc) where T : unmanaged
    {
        if (typeof(T) == typeof(float) && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            return System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a.AsSingle(), b.AsSingle(), acc.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double) && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            return System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(a.AsDouble(), b.AsDouble(), acc.AsDouble()).As<double, T>();
        return a * b + acc;
    }

    /// <summary>C[6, nr] (+)= alpha * Apack[6 x kc] · Bpack[kc x nr]; 12 vector accumulators live in registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel<T>(int kc, T* pa, T* pb, T* c, int ldc, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256<T>.Count;
        Vector256<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                     c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector256.Load(pb);
            var b1 = Vector256.Load(pb + w);
            var a0 = Vector256.Create(pa[0]); c00 = Fma(a0, b0, c00); c01 = Fma(a0, b1, c01);
            var a1 = Vector256.Create(pa[1]); c10 = Fma(a1, b0, c10); c11 = Fma(a1, b1, c11);
            var a2 = Vector256.Create(pa[2]); c20 = Fma(a2, b0, c20); c21 = Fma(a2, b1, c21);
            var a3 = Vector256.Create(pa[3]); c30 = Fma(a3, b0, c30); c31 = Fma(a3, b1, c31);
            var a4 = Vector256.Create(pa[4]); c40 = Fma(a4, b0, c40); c41 = Fma(a4, b1, c41);
            var a5 = Vector256.Create(pa[5]); c50 = Fma(a5, b0, c50); c51 = Fma(a5, b1, c51);
            pa += MR; pb += 2 * w;
        }
        var va = Vector256.Create(alpha);
        Store(c, 0, c00, c01, va, accumulate, w); Store(c + ldc, 0, c10, c11, va, accumulate, w);
        Store(c + 2 * ldc, 0, c20, c21, va, accumulate, w); Store(c + 3 * ldc, 0, c30, c31, va, accumulate, w);
        Store(c + 4 * ldc, 0, c40, c41, va, accumulate, w); Store(c + 5 * ldc, 0, c50, c51, va, accumulate, w);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(T* row, int _, Vector256<T> v0, Vector256<T> v1, Vector256<T> alpha, bool accumulate, int w)
        where T : unmanaged
    {
        if (accumulate)
        {
            Fma(v0, alpha, Vector256.Load(row)).Store(row);
            Fma(v1, alpha, Vector256.Load(row + w)).Store(row + w);
        }
        else
        {
            (v0 * alpha).Store(row);
            (v1 * alpha).Store(row + w);
        }
    }
}
