using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// y[N,out] (+)= alpha · x[N,in]·W[out,in]ᵀ for few rows (decode, short prompts, short sentences), straight from the
/// row-major weights with no packing. The packed GEMM (<see cref="Gemm"/>) copies every weight into slivers on each
/// call, which pays when hundreds of rows share the copy but at N = 1 costs as much as the product; here each weight
/// row is read from memory once per call and multiplied against the N input rows while it sits in L1.
///
/// Register tiles: four weight rows against four input rows (16 vector accumulators, each weight and input vector
/// loaded once per tile), four weight rows against one input row for the leftover rows, one against one for the last
/// weight rows. Every output y[i,o] is one accumulator over the full vectors of k (Vector512 where AVX-512 is there,
/// else Vector256), summed across lanes, then the scalar tail in order, whichever tile computed it. So a row's result
/// does not depend on N or on where the row sits: a sequence gets bit-identical logits alone or in any batch, and
/// batching never changes a greedy token.
/// </summary>
internal static unsafe class RowDot
{
    /// <summary>Output rows per parallel task (a multiple of the 4-row tile).</summary>
    private const int Block = 64;

    /// <summary>
    /// Rows up to which <see cref="Gemm.MatmulNT{T}"/> (every linear layer's forward and the LM head) takes this kernel
    /// instead of the packed GEMM: up to here packing the weights costs more than it saves; at 128 rows the packed GEMM
    /// wins on most shapes (`TransPeft.Bench smallm`, docs/BENCHMARKS.md "Small-M products").
    /// </summary>
    public const int MaxRows = 64;

    /// <summary>y[N,out] (+)= alpha · x[N,in]·W[out,in]ᵀ (rows of y are <paramref name="outDim"/> apart).</summary>
    public static void MatmulNT(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha)
    {
        if (Vector512.IsHardwareAccelerated) MatmulNT<Lanes512>(y, x, w, n, inDim, outDim, accumulate, alpha);
        else MatmulNT<Lanes256>(y, x, w, n, inDim, outDim, accumulate, alpha);
    }

    /// <summary>The same product at a chosen vector width (tests run the AVX2 form on AVX-512 machines too).</summary>
    internal static void MatmulNT<TV>(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha)
        where TV : unmanaged, ILanes<TV>
    {
        if (n <= 0 || outDim <= 0) return;
        var job = new Job<TV>(y, x, w, n, inDim, outDim, accumulate, alpha);
        int blocks = (outDim + Block - 1) / Block;
        // The job is a struct: only a split across threads boxes it into a delegate (a decode step allocates nothing).
        if (CpuParallel.Splits(blocks, (long)outDim * inDim * n > 200_000)) CpuParallel.For(blocks, job.Run);
        else for (int b = 0; b < blocks; b++) job.Run(b);
    }

    private readonly struct Job<TV>(float* y, float* x, float* w, int n, int k, int outDim, bool accumulate, float alpha)
        where TV : unmanaged, ILanes<TV>
    {
        public void Run(int block)
        {
            int o = block * Block, o1 = Math.Min(outDim, o + Block);
            for (; o + 4 <= o1; o += 4)
            {
                float* wo = w + (long)o * k;
                int i = 0;
                for (; i + 4 <= n; i += 4) Tile4x4(wo, x + (long)i * k, y + (long)i * outDim + o);
                for (; i < n; i++) Tile4x1(wo, x + (long)i * k, y + (long)i * outDim + o);
            }
            for (; o < o1; o++)
                for (int i = 0; i < n; i++) Tile1x1(w + (long)o * k, x + (long)i * k, y + (long)i * outDim + o);
        }

        /// <summary>y[r, c] for four input rows r (k apart) and four weight rows c (k apart), y rows outDim apart.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile4x4(float* w0, float* x0, float* y0)
        {
            int step = TV.Count, kk = 0;
            float* w1 = w0 + k, w2 = w1 + k, w3 = w2 + k, x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
            TV s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default,
               s20 = default, s21 = default, s22 = default, s23 = default, s30 = default, s31 = default, s32 = default, s33 = default;
            for (; kk + step <= k; kk += step)
            {
                TV a = TV.Load(w0 + kk), b = TV.Load(w1 + kk), c = TV.Load(w2 + kk), d = TV.Load(w3 + kk);
                TV v = TV.Load(x0 + kk);
                s00 = TV.Fma(a, v, s00); s01 = TV.Fma(b, v, s01); s02 = TV.Fma(c, v, s02); s03 = TV.Fma(d, v, s03);
                v = TV.Load(x1 + kk);
                s10 = TV.Fma(a, v, s10); s11 = TV.Fma(b, v, s11); s12 = TV.Fma(c, v, s12); s13 = TV.Fma(d, v, s13);
                v = TV.Load(x2 + kk);
                s20 = TV.Fma(a, v, s20); s21 = TV.Fma(b, v, s21); s22 = TV.Fma(c, v, s22); s23 = TV.Fma(d, v, s23);
                v = TV.Load(x3 + kk);
                s30 = TV.Fma(a, v, s30); s31 = TV.Fma(b, v, s31); s32 = TV.Fma(c, v, s32); s33 = TV.Fma(d, v, s33);
            }
            float* y1 = y0 + outDim, y2 = y1 + outDim, y3 = y2 + outDim;
            Finish(y0, s00, w0, x0, kk); Finish(y0 + 1, s01, w1, x0, kk); Finish(y0 + 2, s02, w2, x0, kk); Finish(y0 + 3, s03, w3, x0, kk);
            Finish(y1, s10, w0, x1, kk); Finish(y1 + 1, s11, w1, x1, kk); Finish(y1 + 2, s12, w2, x1, kk); Finish(y1 + 3, s13, w3, x1, kk);
            Finish(y2, s20, w0, x2, kk); Finish(y2 + 1, s21, w1, x2, kk); Finish(y2 + 2, s22, w2, x2, kk); Finish(y2 + 3, s23, w3, x2, kk);
            Finish(y3, s30, w0, x3, kk); Finish(y3 + 1, s31, w1, x3, kk); Finish(y3 + 2, s32, w2, x3, kk); Finish(y3 + 3, s33, w3, x3, kk);
        }

        /// <summary>One input row against four weight rows: four independent FMA chains, the weights streamed once.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile4x1(float* w0, float* x0, float* y0)
        {
            int step = TV.Count, kk = 0;
            float* w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            TV s0 = default, s1 = default, s2 = default, s3 = default;
            for (; kk + step <= k; kk += step)
            {
                TV v = TV.Load(x0 + kk);
                s0 = TV.Fma(TV.Load(w0 + kk), v, s0); s1 = TV.Fma(TV.Load(w1 + kk), v, s1);
                s2 = TV.Fma(TV.Load(w2 + kk), v, s2); s3 = TV.Fma(TV.Load(w3 + kk), v, s3);
            }
            Finish(y0, s0, w0, x0, kk); Finish(y0 + 1, s1, w1, x0, kk); Finish(y0 + 2, s2, w2, x0, kk); Finish(y0 + 3, s3, w3, x0, kk);
        }

        private void Tile1x1(float* w0, float* x0, float* y0)
        {
            int step = TV.Count, kk = 0;
            TV s = default;
            for (; kk + step <= k; kk += step) s = TV.Fma(TV.Load(w0 + kk), TV.Load(x0 + kk), s);
            Finish(y0, s, w0, x0, kk);
        }

        /// <summary>The one reduction every tile ends with: lanes summed, then the k % width tail in order, then alpha.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Finish(float* y0, TV acc, float* wr, float* xr, int kk)
        {
            float t = TV.Sum(acc);
            for (; kk < k; kk++) t += wr[kk] * xr[kk];
            *y0 = accumulate ? *y0 + alpha * t : alpha * t;
        }
    }
}

/// <summary>
/// A float vector of the kernel's width, so one tile source serves AVX-512 and AVX2 (the runtime's own generic vector
/// interface is not public). Structs: every call is specialised and inlined, the wrapper costs nothing.
/// </summary>
internal unsafe interface ILanes<TSelf> where TSelf : unmanaged, ILanes<TSelf>
{
    static abstract int Count { get; }
    static abstract TSelf Load(float* p);
    /// <summary>a·b + acc, fused.</summary>
    static abstract TSelf Fma(TSelf a, TSelf b, TSelf acc);
    static abstract float Sum(TSelf v);
}

internal readonly unsafe struct Lanes512(Vector512<float> v) : ILanes<Lanes512>
{
    private readonly Vector512<float> _v = v;
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Fma(Lanes512 a, Lanes512 b, Lanes512 acc) => new(Vector512.FusedMultiplyAdd(a._v, b._v, acc._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Lanes512 v) => Vector512.Sum(v._v);
}

internal readonly unsafe struct Lanes256(Vector256<float> v) : ILanes<Lanes256>
{
    private readonly Vector256<float> _v = v;
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Fma(Lanes256 a, Lanes256 b, Lanes256 acc) => new(Vector256.FusedMultiplyAdd(a._v, b._v, acc._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Lanes256 v) => Vector256.Sum(v._v);
}
