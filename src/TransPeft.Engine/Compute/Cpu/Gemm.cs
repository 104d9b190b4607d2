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
/// Structure (the classic Goto/BLIS scheme): the K dimension is cut into KC-deep slabs; each slab of B is
/// packed once into NR-wide column slivers, shared read-only by every tile while it is hot in cache, so a
/// weight is never re-packed per block of rows. Tiles of (MC rows x NC cols) run in parallel; each packs its MR-row
/// strips of A into a contiguous MR x KC block, and the MR x NR micro-kernel streams both packed operands with
/// unit stride, keeping its 2·MR accumulators in vector registers. NR is two vectors wide: 32 floats with
/// AVX-512 (Vector512), 16 with AVX2. Generic over float (production) and double (finite-difference tests).
/// </summary>
internal static unsafe class Gemm
{
    private const int MR = 6;
    private const int KC = 256;
    private const int MC = 96;   // multiple of MR
    private const int NC = 512;  // multiple of NR for float and double, 256- and 512-bit

    /// <summary>
    /// out[N,OC] (+)= x[N,C] · W[OC,C]ᵀ — a linear layer's forward. In float with few rows (decode, short prompts, the
    /// LM head on a prompt's last row, short sentences; <see cref="RowDot.Suits"/>) it goes to <see cref="RowDot"/>,
    /// which reads W in place: packing W here would cost more than the product.
    /// </summary>
    public static void MatmulNT<T>(T* outp, T* x, T* w, int n, int c, int oc, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float) && RowDot.Suits(n, c))
            RowDot.MatmulNT((float*)outp, (float*)x, (float*)w, n, c, oc, accumulate, Unsafe.As<T, float>(ref alpha));
        else
            PackedMatmulNT(outp, x, w, n, c, oc, accumulate, alpha);
    }

    /// <summary><see cref="MatmulNT"/> through the packed kernel whatever N is (tests and the small-M benchmark).</summary>
    public static void PackedMatmulNT<T>(T* outp, T* x, T* w, int n, int c, int oc, bool accumulate, T alpha)
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

    /// <summary>Vector width of the micro-kernel for T: 512-bit where AVX-512 is there, else 256-bit.</summary>
    private static int Width<T>() where T : unmanaged =>
        Vector512.IsHardwareAccelerated ? Vector512<T>.Count : Vector256<T>.Count;

    /// <summary>
    /// General strided form. A(m,k) = a[m*aRs + k*aCs], B(k,n) = b[k*bRs + n*bCs], C row-major with ldc.
    /// <paramref name="parallel"/> = false keeps the call on the calling thread (callers that already run in
    /// parallel, e.g. attention per head, must not nest thread-pool loops).
    /// </summary>
    public static void Run<T>(int m, int n, int k, T* a, int aRs, int aCs, T* b, int bRs, int bCs,
        T* c, int ldc, bool accumulate, T alpha, bool parallel = true) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (m <= 0 || n <= 0) return;
        if (k <= 0)
        {
            if (!accumulate) for (int i = 0; i < m; i++) new Span<T>(c + (long)i * ldc, n).Clear();
            return;
        }
        int nr = 2 * Width<T>();
        // A narrow C (LoRA's rank-r side: x·Aᵀ, dy·B, dyᵀ·t) would fill a fraction of each NR-wide sliver with
        // padding. With contiguous rows of A, one dot product per output streams A exactly once; otherwise
        // Cᵀ = Bᵀ·Aᵀ puts the long side along N, and the result is stored transposed.
        if (n < nr && m > n && aCs == 1)
            NarrowDot(m, n, k, a, aRs, b, bRs, bCs, c, ldc, accumulate, alpha, parallel);
        else if (n < nr && m > n)
            Strided(n, m, k, b, bCs, bRs, a, aCs, aRs, c, 1, ldc, accumulate, alpha, parallel);
        else
            Strided(m, n, k, a, aRs, aCs, b, bRs, bCs, c, ldc, 1, accumulate, alpha, parallel);
    }

    /// <summary>C[i, j] (+)= alpha · A_i · Bᵀ_j for n &lt; NR, with Bᵀ packed once as n contiguous rows of k.</summary>
    private static void NarrowDot<T>(int m, int n, int k, T* a, int aRs, T* b, int bRs, int bCs,
        T* c, int ldc, bool accumulate, T alpha, bool parallel) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T[] bt = ArrayPool<T>.Shared.Rent(n * k);
        try
        {
            for (int j = 0; j < n; j++)
                for (int kk = 0; kk < k; kk++) bt[j * k + kk] = b[(long)kk * bRs + (long)j * bCs];
            const int rowsPerTask = 64;
            var job = new NarrowJob<T>(m, n, k, a, aRs, bt, c, ldc, accumulate, alpha, rowsPerTask);
            int blocks = (m + rowsPerTask - 1) / rowsPerTask;
            // The job is a struct: only a split across threads boxes it into a delegate (decode allocates nothing).
            if (CpuParallel.Splits(blocks, parallel && 2L * m * n * k > 1_000_000)) CpuParallel.For(blocks, job.Run);
            else for (int i = 0; i < blocks; i++) job.Run(i);
        }
        finally
        {
            ArrayPool<T>.Shared.Return(bt);
        }
    }

    private readonly struct NarrowJob<T>(int m, int n, int k, T* a, int aRs, T[] bt, T* c, int ldc, bool accumulate, T alpha, int rows)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        public void Run(int block)
        {
            int end = Math.Min(m, (block + 1) * rows);
            fixed (T* pbt = bt)
            {
                for (int i = block * rows; i < end; i++)
                {
                    T* ai = a + (long)i * aRs, ci = c + (long)i * ldc;
                    int j = 0;
                    for (; j + 4 <= n; j += 4) Dot4(ai, pbt + (long)j * k, ci + j);
                    for (; j < n; j++) Store(ci + j, System.Numerics.Tensors.TensorPrimitives.Dot(new ReadOnlySpan<T>(ai, k), new ReadOnlySpan<T>(pbt + (long)j * k, k)));
                }
            }
        }

        private void Store(T* ci, T dot) => *ci = accumulate ? *ci + alpha * dot : alpha * dot;

        /// <summary>Four dot products of one row of A with four rows of Bᵀ: each vector of A is loaded once.</summary>
        private void Dot4(T* ai, T* b0, T* ci)
        {
            int w = Vector256<T>.Count, kk = 0;
            Vector256<T> s0 = default, s1 = default, s2 = default, s3 = default;
            T* b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
            for (; kk + w <= k; kk += w)
            {
                var av = Vector256.Load(ai + kk);
                s0 = Fma(av, Vector256.Load(b0 + kk), s0);
                s1 = Fma(av, Vector256.Load(b1 + kk), s1);
                s2 = Fma(av, Vector256.Load(b2 + kk), s2);
                s3 = Fma(av, Vector256.Load(b3 + kk), s3);
            }
            T t0 = Vector256.Sum(s0), t1 = Vector256.Sum(s1), t2 = Vector256.Sum(s2), t3 = Vector256.Sum(s3);
            for (; kk < k; kk++) { t0 += ai[kk] * b0[kk]; t1 += ai[kk] * b1[kk]; t2 += ai[kk] * b2[kk]; t3 += ai[kk] * b3[kk]; }
            Store(ci, t0); Store(ci + 1, t1); Store(ci + 2, t2); Store(ci + 3, t3);
        }
    }

    /// <summary>C(i,j) = c[i*cRs + j*cCs]; the fast store path needs cCs = 1, anything else goes through a staging tile.</summary>
    private static void Strided<T>(int m, int n, int k, T* a, int aRs, int aCs, T* b, int bRs, int bCs,
        T* c, int cRs, int cCs, bool accumulate, T alpha, bool parallel) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int nr = 2 * Width<T>();
        int slivers = (n + nr - 1) / nr, slabs = (k + KC - 1) / KC;
        bool par = parallel && CpuParallel.Threads > 1 && 2L * m * n * k > 2_000_000;
        // Row blocks: MC rows, or fewer so that every thread gets about three tiles (m = 256 would otherwise be 3 tiles).
        int threads = par ? CpuParallel.Threads : 1;
        int nBlocks = (n + NC - 1) / NC;
        int mc = MC;
        if (par && (m + MC - 1) / MC * nBlocks < 3 * threads)
        {
            int wantBlocks = (3 * threads + nBlocks - 1) / nBlocks;
            mc = Math.Min(MC, Math.Max(MR, ((m + wantBlocks - 1) / wantBlocks + MR - 1) / MR * MR));
        }
        int tiles = (m + mc - 1) / mc * nBlocks;
        T[] bufB = ArrayPool<T>.Shared.Rent(slivers * nr * KC);
        try
        {
            fixed (T* pb = bufB)
            {
                var job = new Job<T>(m, n, k, a, aRs, aCs, b, bRs, bCs, c, cRs, cCs, accumulate, alpha, nr, pb, mc);
                // Slab by slab (GotoBLAS order): the packed KC x N slab of B stays in cache while every tile uses it.
                for (int slab = 0; slab < slabs; slab++)
                {
                    job.Slab = slab;
                    // The job is a struct: only a split across threads boxes it into a delegate (decode allocates nothing).
                    if (job.DirectB) { if (n % nr != 0) job.PackSliver(slivers - 1); }
                    else if (CpuParallel.Splits(slivers, par && (long)KC * n > 65_536)) CpuParallel.For(slivers, job.PackSliver);
                    else for (int j = 0; j < slivers; j++) job.PackSliver(j);
                    if (CpuParallel.Splits(tiles, par)) CpuParallel.For(tiles, job.RunTile);
                    else for (int t = 0; t < tiles; t++) job.RunTile(t);
                }
            }
        }
        finally
        {
            ArrayPool<T>.Shared.Return(bufB);
        }
    }

    private struct Job<T>(int m, int n, int k, T* a, int aRs, int aCs, T* b, int bRs, int bCs,
        T* c, int cRs, int cCs, bool accumulate, T alpha, int nr, T* packedB, int mcBlock)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        /// <summary>The KC-deep slab of K being multiplied.</summary>
        public int Slab;

        /// <summary>
        /// With rows of B contiguous and at most two strips of A, each element of B would be used once or twice
        /// after packing (LoRA's dA = dtᵀ·x, Cᵀ of dB): the kernel then reads full-width slivers of B in place.
        /// </summary>
        public readonly bool DirectB = bCs == 1 && m <= 2 * MR;

        /// <summary>Packed B slab: sliver j at j·nr·KC holds kc rows of nr values (zero-padded).</summary>
        private T* Sliver(int j) => packedB + (long)j * nr * KC;

        public void PackSliver(int j)
        {
            int k0 = Slab * KC, kc = Math.Min(KC, k - k0);
            int n0 = j * nr, cols = Math.Min(nr, n - n0);
            T* d = Sliver(j);
            if (bCs == 1 && cols == nr)
            {
                // Rows of B are contiguous (dy·W): copy nr values (two vectors) per k.
                for (int kk = 0; kk < kc; kk++) CopyRow(b + (long)(k0 + kk) * bRs + n0, d + kk * nr);
                return;
            }
            if (bCs == 1)
            {
                for (int kk = 0; kk < kc; kk++)
                {
                    T* src = b + (long)(k0 + kk) * bRs + n0;
                    new ReadOnlySpan<T>(src, cols).CopyTo(new Span<T>(d + kk * nr, cols));
                    new Span<T>(d + kk * nr + cols, nr - cols).Clear();
                }
                return;
            }
            // Columns of B are contiguous (x·Wᵀ: a column is a row of W): read along k, write with stride nr.
            if (typeof(T) == typeof(float) && bRs == 1 && cols == nr && Avx.IsSupported)
            {
                PackTransposed((float*)(b + (long)k0 + (long)n0 * bCs), bCs, kc, nr, (float*)d);
                return;
            }
            if (cols < nr) new Span<T>(d, kc * nr).Clear();
            for (int q = 0; q < cols; q++)
            {
                T* src = b + (long)k0 * bRs + (long)(n0 + q) * bCs;
                if (bRs == 1) for (int kk = 0; kk < kc; kk++) d[kk * nr + q] = src[kk];
                else for (int kk = 0; kk < kc; kk++) d[kk * nr + q] = src[(long)kk * bRs];
            }
        }

        /// <summary>One (MC x NC) tile of C against the current slab: pack its rows of A, then MR x NR micro-tiles.</summary>
        public void RunTile(int tile)
        {
            int nBlocks = (n + NC - 1) / NC;
            int m0 = tile / nBlocks * mcBlock, n0 = tile % nBlocks * NC;
            int mc = Math.Min(mcBlock, m - m0), nc = Math.Min(NC, n - n0);
            int tileSlivers = (nc + nr - 1) / nr, strips = (mc + MR - 1) / MR;
            int k0 = Slab * KC, kc = Math.Min(KC, k - k0);
            bool acc = accumulate || k0 > 0;
            T[] bufA = ArrayPool<T>.Shared.Rent(strips * MR * KC + Vector256<T>.Count);
            Span<T> edge = stackalloc T[MR * nr];
            try
            {
                fixed (T* pa = bufA)
                fixed (T* e = edge)
                {
                    // Rows of A contiguous along K (x·Wᵀ, dy·W): the kernel reads full strips in place (MR row
                    // streams, hot in L1 across the slivers); only a ragged last strip is packed, zero-padded.
                    // Otherwise (dyᵀ·x) the whole block is packed, which also compacts the strided columns.
                    bool direct = aCs == 1;
                    if (!direct) PackA(pa, m0, mc, k0, kc);
                    else if (mc % MR != 0) PackA(pa, m0 + mc / MR * MR, mc % MR, k0, kc);
                    for (int s = 0; s < strips; s++)
                    {
                        int rows = Math.Min(MR, mc - s * MR);
                        T* aStrip; int ars, acs;
                        if (!direct) { aStrip = pa + s * MR * kc; ars = 1; acs = MR; }
                        else if (rows == MR) { aStrip = a + (long)(m0 + s * MR) * aRs + k0; ars = aRs; acs = 1; }
                        else { aStrip = pa; ars = 1; acs = MR; }
                        for (int j = 0; j < tileSlivers; j++)
                        {
                            int cols = Math.Min(nr, nc - j * nr);
                            int jj = n0 / nr + j, ldb = nr;
                            T* pbj = Sliver(jj);
                            if (DirectB && cols == nr) { pbj = b + (long)k0 * bRs + (long)jj * nr; ldb = bRs; }
                            T* cTile = c + (long)(m0 + s * MR) * cRs + (long)(n0 + j * nr) * cCs;
                            if (rows == MR && cols == nr && cCs == 1)
                            {
                                MicroKernel(kc, aStrip, ars, acs, pbj, ldb, cTile, cRs, acc, alpha);
                                continue;
                            }
                            // Edge or transposed tile: run the full kernel on a zero-padded copy, write back the valid part.
                            for (int r = 0; r < MR; r++)
                                for (int q = 0; q < nr; q++)
                                    e[r * nr + q] = acc && r < rows && q < cols ? cTile[(long)r * cRs + (long)q * cCs] : T.Zero;
                            MicroKernel(kc, aStrip, ars, acs, pbj, ldb, e, nr, true, alpha);
                            for (int r = 0; r < rows; r++)
                                for (int q = 0; q < cols; q++)
                                    cTile[(long)r * cRs + (long)q * cCs] = e[r * nr + q];
                        }
                    }
                }
            }
            finally
            {
                ArrayPool<T>.Shared.Return(bufA);
            }
        }

        /// <summary>A[m0..m0+mc, k0..k0+kc] into MR-row strips: strip s holds kc columns of MR values (zero-padded).</summary>
        private void PackA(T* dst, int m0, int mc, int k0, int kc)
        {
            int strips = (mc + MR - 1) / MR;
            for (int s = 0; s < strips; s++)
            {
                T* d = dst + s * MR * kc;
                int rows = Math.Min(MR, mc - s * MR);
                T* src = a + (long)(m0 + s * MR) * aRs + (long)k0 * aCs;
                if (aRs == 1 && rows == MR)
                {
                    // Columns of A are contiguous (dyᵀ in a weight gradient): MR consecutive values per k. Where a
                    // vector of 8 fits inside A, one load and one (overlapping, hence the slack in bufA) store.
                    if (Vector256<T>.Count >= MR && m0 + s * MR + Vector256<T>.Count <= m)
                        for (int kk = 0; kk < kc; kk++) Vector256.Load(src + (long)kk * aCs).Store(d + kk * MR);
                    else
                        for (int kk = 0; kk < kc; kk++)
                        {
                            T* col = src + (long)kk * aCs;
                            for (int r = 0; r < MR; r++) d[kk * MR + r] = col[r];
                        }
                    continue;
                }
                for (int r = 0; r < MR; r++)
                {
                    if (r < rows)
                    {
                        T* row = src + (long)r * aRs;
                        if (aCs == 1) for (int kk = 0; kk < kc; kk++) d[kk * MR + r] = row[kk];
                        else for (int kk = 0; kk < kc; kk++) d[kk * MR + r] = row[(long)kk * aCs];
                    }
                    else
                        for (int kk = 0; kk < kc; kk++) d[kk * MR + r] = T.Zero;
                }
            }
        }
    }

    /// <summary>
    /// d[kk·nr + q] = w[q·ldw + kk] for q &lt; nr, kk &lt; kc: nr weight rows into a sliver, 8x8 blocks transposed in
    /// registers (eight row loads, eight column stores) instead of one scalar copy per element. This packing is the
    /// part of every x·Wᵀ that grows with the weight, not with the rows, so it dominates small-N products.
    /// </summary>
    private static void PackTransposed(float* w, int ldw, int kc, int nr, float* d)
    {
        int k8 = kc & ~7;
        for (int q0 = 0; q0 < nr; q0 += 8)
        {
            float* r = w + (long)q0 * ldw;
            for (int kk = 0; kk < k8; kk += 8)
            {
                Vector256<float> r0 = Avx.LoadVector256(r + kk), r1 = Avx.LoadVector256(r + ldw + kk),
                    r2 = Avx.LoadVector256(r + 2L * ldw + kk), r3 = Avx.LoadVector256(r + 3L * ldw + kk),
                    r4 = Avx.LoadVector256(r + 4L * ldw + kk), r5 = Avx.LoadVector256(r + 5L * ldw + kk),
                    r6 = Avx.LoadVector256(r + 6L * ldw + kk), r7 = Avx.LoadVector256(r + 7L * ldw + kk);
                var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
                var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
                var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
                var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
                var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
                var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
                var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
                var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
                float* o = d + (long)kk * nr + q0;
                Avx.Store(o, Avx.Permute2x128(u0, u4, 0x20));
                Avx.Store(o + nr, Avx.Permute2x128(u1, u5, 0x20));
                Avx.Store(o + 2 * nr, Avx.Permute2x128(u2, u6, 0x20));
                Avx.Store(o + 3 * nr, Avx.Permute2x128(u3, u7, 0x20));
                Avx.Store(o + 4 * nr, Avx.Permute2x128(u0, u4, 0x31));
                Avx.Store(o + 5 * nr, Avx.Permute2x128(u1, u5, 0x31));
                Avx.Store(o + 6 * nr, Avx.Permute2x128(u2, u6, 0x31));
                Avx.Store(o + 7 * nr, Avx.Permute2x128(u3, u7, 0x31));
            }
            for (int q = q0; q < q0 + 8; q++)
                for (int kk = k8; kk < kc; kk++) d[(long)kk * nr + q] = w[(long)q * ldw + kk];
        }
    }

    /// <summary>dst[0..nr) = src[0..nr), nr = two vectors of the kernel's width.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyRow<T>(T* src, T* dst) where T : unmanaged
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512.Load(src).Store(dst);
            Vector512.Load(src + Vector512<T>.Count).Store(dst + Vector512<T>.Count);
        }
        else
        {
            Vector256.Load(src).Store(dst);
            Vector256.Load(src + Vector256<T>.Count).Store(dst + Vector256<T>.Count);
        }
    }

    /// <summary>
    /// C[6, nr] (+)= alpha * A[6 x kc] · Bpack[kc x nr]; 12 vector accumulators live in registers.
    /// A(r, kk) = pa[r·ars + kk·acs]: a packed strip (ars 1, acs MR) or rows read in place (ars = row stride, acs 1);
    /// B(kk, :) at pb + kk·ldb: a packed sliver (ldb = nr) or a row of B read in place.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MicroKernel<T>(int kc, T* pa, int ars, int acs, T* pb, int ldb, T* c, int ldc, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (Vector512.IsHardwareAccelerated) MicroKernel512(kc, pa, ars, acs, pb, ldb, c, ldc, accumulate, alpha);
        else MicroKernel256(kc, pa, ars, acs, pb, ldb, c, ldc, accumulate, alpha);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel512<T>(int kc, T* pa, int ars, int acs, T* pb, int ldb, T* c, int ldc, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector512<T>.Count;
        nint o1 = ars, o2 = 2 * (nint)ars, o3 = 3 * (nint)ars, o4 = 4 * (nint)ars, o5 = 5 * (nint)ars;
        Vector512<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                     c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector512.Load(pb);
            var b1 = Vector512.Load(pb + w);
            var a0 = Vector512.Create(pa[0]); c00 = Fma(a0, b0, c00); c01 = Fma(a0, b1, c01);
            var a1 = Vector512.Create(pa[o1]); c10 = Fma(a1, b0, c10); c11 = Fma(a1, b1, c11);
            var a2 = Vector512.Create(pa[o2]); c20 = Fma(a2, b0, c20); c21 = Fma(a2, b1, c21);
            var a3 = Vector512.Create(pa[o3]); c30 = Fma(a3, b0, c30); c31 = Fma(a3, b1, c31);
            var a4 = Vector512.Create(pa[o4]); c40 = Fma(a4, b0, c40); c41 = Fma(a4, b1, c41);
            var a5 = Vector512.Create(pa[o5]); c50 = Fma(a5, b0, c50); c51 = Fma(a5, b1, c51);
            pa += acs; pb += ldb;
        }
        var va = Vector512.Create(alpha);
        Store512(c, c00, c01, va, accumulate, w); Store512(c + ldc, c10, c11, va, accumulate, w);
        Store512(c + 2 * ldc, c20, c21, va, accumulate, w); Store512(c + 3 * ldc, c30, c31, va, accumulate, w);
        Store512(c + 4 * ldc, c40, c41, va, accumulate, w); Store512(c + 5 * ldc, c50, c51, va, accumulate, w);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store512<T>(T* row, Vector512<T> v0, Vector512<T> v1, Vector512<T> alpha, bool accumulate, int w)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (accumulate)
        {
            Fma(v0, alpha, Vector512.Load(row)).Store(row);
            Fma(v1, alpha, Vector512.Load(row + w)).Store(row + w);
        }
        else
        {
            (v0 * alpha).Store(row);
            (v1 * alpha).Store(row + w);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroKernel256<T>(int kc, T* pa, int ars, int acs, T* pb, int ldb, T* c, int ldc, bool accumulate, T alpha)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        int w = Vector256<T>.Count;
        nint o1 = ars, o2 = 2 * (nint)ars, o3 = 3 * (nint)ars, o4 = 4 * (nint)ars, o5 = 5 * (nint)ars;
        Vector256<T> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default,
                     c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector256.Load(pb);
            var b1 = Vector256.Load(pb + w);
            var a0 = Vector256.Create(pa[0]); c00 = Fma(a0, b0, c00); c01 = Fma(a0, b1, c01);
            var a1 = Vector256.Create(pa[o1]); c10 = Fma(a1, b0, c10); c11 = Fma(a1, b1, c11);
            var a2 = Vector256.Create(pa[o2]); c20 = Fma(a2, b0, c20); c21 = Fma(a2, b1, c21);
            var a3 = Vector256.Create(pa[o3]); c30 = Fma(a3, b0, c30); c31 = Fma(a3, b1, c31);
            var a4 = Vector256.Create(pa[o4]); c40 = Fma(a4, b0, c40); c41 = Fma(a4, b1, c41);
            var a5 = Vector256.Create(pa[o5]); c50 = Fma(a5, b0, c50); c51 = Fma(a5, b1, c51);
            pa += acs; pb += ldb;
        }
        var va = Vector256.Create(alpha);
        Store256(c, c00, c01, va, accumulate, w); Store256(c + ldc, c10, c11, va, accumulate, w);
        Store256(c + 2 * ldc, c20, c21, va, accumulate, w); Store256(c + 3 * ldc, c30, c31, va, accumulate, w);
        Store256(c + 4 * ldc, c40, c41, va, accumulate, w); Store256(c + 5 * ldc, c50, c51, va, accumulate, w);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store256<T>(T* row, Vector256<T> v0, Vector256<T> v1, Vector256<T> alpha, bool accumulate, int w)
        where T : unmanaged, IFloatingPointIeee754<T>
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

    // Vector512/256.FusedMultiplyAdd exist for float and double only; the type tests fold away per instantiation.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> Fma<T>(Vector512<T> a, Vector512<T> b, Vector512<T> acc) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Vector512.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), acc.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double)) return Vector512.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), acc.AsDouble()).As<double, T>();
        return a * b + acc;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<T> Fma<T>(Vector256<T> a, Vector256<T> b, Vector256<T> acc) where T : unmanaged
    {
        if (!System.Runtime.Intrinsics.X86.Fma.IsSupported) return a * b + acc;
        if (typeof(T) == typeof(float)) return Vector256.FusedMultiplyAdd(a.AsSingle(), b.AsSingle(), acc.AsSingle()).As<float, T>();
        if (typeof(T) == typeof(double)) return Vector256.FusedMultiplyAdd(a.AsDouble(), b.AsDouble(), acc.AsDouble()).As<double, T>();
        return a * b + acc;
    }
}
