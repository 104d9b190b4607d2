using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    /// <summary>Rows up to which <see cref="Gemm.MatmulNT{T}"/> may take this kernel (see <see cref="Suits"/>).</summary>
    public const int MaxRows = 64;

    /// <summary>
    /// Whether <see cref="Gemm.MatmulNT{T}"/> (every linear layer's forward and the LM head) takes this kernel for N rows
    /// of depth k instead of the packed GEMM: up to 64 rows, packing the weights costs more than it saves; with short
    /// rows (LoRA's expand, k = r) each output's lane reduction is most of the work, and from 16 rows on the packed
    /// micro-kernel, which needs none, wins (`TransPeft.Bench smallm`, docs/BENCHMARKS.md "Small-M products").
    /// </summary>
    public static bool Suits(int n, int k) => n < 16 || (n <= MaxRows && k > 32);

    /// <summary>y[N,out] (+)= alpha · x[N,in]·W[out,in]ᵀ (rows of y are <paramref name="outDim"/> apart).</summary>
    public static void MatmulNT(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha)
    {
        if (Vector512.IsHardwareAccelerated) MatmulNT<Lanes512, float>(y, x, w, n, inDim, outDim, accumulate, alpha);
        else MatmulNT<Lanes256, float>(y, x, w, n, inDim, outDim, accumulate, alpha);
    }

    /// <summary>
    /// The same product with bf16 weights (the top 16 bits of a float32, <see cref="IO.BFloat16"/>), widened to float32 as they are
    /// loaded: half the bytes streamed, float32 arithmetic, and exactly the result of the float32 product on the widened
    /// weights (the same tiles and sums). Serving adapters stored at bf16 use it (<see cref="MixedLora"/>).
    /// </summary>
    public static void MatmulNT(float* y, float* x, ushort* w, int n, int inDim, int outDim, bool accumulate, float alpha)
    {
        if (Vector512.IsHardwareAccelerated) MatmulNT<Lanes512, ushort>(y, x, w, n, inDim, outDim, accumulate, alpha);
        else MatmulNT<Lanes256, ushort>(y, x, w, n, inDim, outDim, accumulate, alpha);
    }

    /// <summary>The same product at a chosen vector width (tests run the AVX2 form on AVX-512 machines too).</summary>
    internal static void MatmulNT<TV>(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha)
        where TV : unmanaged, ILanes<TV> => MatmulNT<TV, float>(y, x, w, n, inDim, outDim, accumulate, alpha);

    /// <summary>The product at a chosen vector width and weight element (float, or ushort for bf16).</summary>
    internal static void MatmulNT<TV, TW>(float* y, float* x, TW* w, int n, int inDim, int outDim, bool accumulate, float alpha)
        where TV : unmanaged, ILanes<TV> where TW : unmanaged
    {
        if (n <= 0 || outDim <= 0) return;
        var job = new Job<TV, TW>(y, x, w, n, inDim, outDim, accumulate, alpha);
        int blocks = (outDim + Block - 1) / Block;
        // The job is a struct: only a split across threads boxes it into a delegate (a decode step allocates nothing).
        if (CpuParallel.Splits(blocks, (long)outDim * inDim * n > 200_000)) CpuParallel.For(blocks, job.Run);
        else for (int b = 0; b < blocks; b++) job.Run(b);
    }

    private readonly struct Job<TV, TW>(float* y, float* x, TW* w, int n, int k, int outDim, bool accumulate, float alpha)
        where TV : unmanaged, ILanes<TV> where TW : unmanaged
    {
        public void Run(int block)
        {
            int o = block * Block, o1 = Math.Min(outDim, o + Block);
            for (; o + 4 <= o1; o += 4)
            {
                TW* wo = w + (long)o * k;
                int i = 0;
                for (; i + 4 <= n; i += 4) Tile4x4(wo, x + (long)i * k, y + (long)i * outDim + o);
                for (; i < n; i++) Tile4x1(wo, x + (long)i * k, y + (long)i * outDim + o);
            }
            for (; o < o1; o++)
                for (int i = 0; i < n; i++) Tile1x1(w + (long)o * k, x + (long)i * k, y + (long)i * outDim + o);
        }

        /// <summary>y[r, c] for four input rows r (k apart) and four weight rows c (k apart), y rows outDim apart.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile4x4(TW* w0, float* x0, float* y0)
        {
            int step = TV.Count, kk = 0;
            TW* w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            float* x1 = x0 + k, x2 = x1 + k, x3 = x2 + k;
            TV s00 = default, s01 = default, s02 = default, s03 = default, s10 = default, s11 = default, s12 = default, s13 = default,
               s20 = default, s21 = default, s22 = default, s23 = default, s30 = default, s31 = default, s32 = default, s33 = default;
            for (; kk + step <= k; kk += step)
            {
                TV a = Weights<TV, TW>.Load(w0 + kk), b = Weights<TV, TW>.Load(w1 + kk), c = Weights<TV, TW>.Load(w2 + kk), d = Weights<TV, TW>.Load(w3 + kk);
                TV v = TV.Load(x0 + kk);
                s00 = TV.Fma(a, v, s00); s01 = TV.Fma(b, v, s01); s02 = TV.Fma(c, v, s02); s03 = TV.Fma(d, v, s03);
                v = TV.Load(x1 + kk);
                s10 = TV.Fma(a, v, s10); s11 = TV.Fma(b, v, s11); s12 = TV.Fma(c, v, s12); s13 = TV.Fma(d, v, s13);
                v = TV.Load(x2 + kk);
                s20 = TV.Fma(a, v, s20); s21 = TV.Fma(b, v, s21); s22 = TV.Fma(c, v, s22); s23 = TV.Fma(d, v, s23);
                v = TV.Load(x3 + kk);
                s30 = TV.Fma(a, v, s30); s31 = TV.Fma(b, v, s31); s32 = TV.Fma(c, v, s32); s33 = TV.Fma(d, v, s33);
            }
            Finish4(y0, Lanes.Sum4(TV.Fold(s00), TV.Fold(s01), TV.Fold(s02), TV.Fold(s03)), w0, x0, kk);
            Finish4(y0 + outDim, Lanes.Sum4(TV.Fold(s10), TV.Fold(s11), TV.Fold(s12), TV.Fold(s13)), w0, x1, kk);
            Finish4(y0 + 2 * outDim, Lanes.Sum4(TV.Fold(s20), TV.Fold(s21), TV.Fold(s22), TV.Fold(s23)), w0, x2, kk);
            Finish4(y0 + 3 * outDim, Lanes.Sum4(TV.Fold(s30), TV.Fold(s31), TV.Fold(s32), TV.Fold(s33)), w0, x3, kk);
        }

        /// <summary>One input row against four weight rows: four independent FMA chains, the weights streamed once.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile4x1(TW* w0, float* x0, float* y0)
        {
            int step = TV.Count, kk = 0;
            TW* w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            TV s0 = default, s1 = default, s2 = default, s3 = default;
            for (; kk + step <= k; kk += step)
            {
                TV v = TV.Load(x0 + kk);
                s0 = TV.Fma(Weights<TV, TW>.Load(w0 + kk), v, s0); s1 = TV.Fma(Weights<TV, TW>.Load(w1 + kk), v, s1);
                s2 = TV.Fma(Weights<TV, TW>.Load(w2 + kk), v, s2); s3 = TV.Fma(Weights<TV, TW>.Load(w3 + kk), v, s3);
            }
            Finish4(y0, Lanes.Sum4(TV.Fold(s0), TV.Fold(s1), TV.Fold(s2), TV.Fold(s3)), w0, x0, kk);
        }

        private void Tile1x1(TW* w0, float* x0, float* y0)
        {
            int step = TV.Count, kk = 0;
            TV s = default;
            for (; kk + step <= k; kk += step) s = TV.Fma(Weights<TV, TW>.Load(w0 + kk), TV.Load(x0 + kk), s);
            float t = Lanes.Sum(TV.Fold(s));
            for (; kk < k; kk++) t += Weights<TV, TW>.At(w0 + kk) * x0[kk];
            *y0 = accumulate ? *y0 + alpha * t : alpha * t;
        }

        /// <summary>
        /// The end of four outputs y0[0..4) of one input row (weight rows w0 .. w0 + 3k): their lane sums, then the k % width
        /// tail in order, then alpha, with exactly the operations of <see cref="Tile1x1"/>'s scalar end in each lane
        /// (a separate multiply and add, as C# evaluates t += w·x), so every tile gives every output the same bits.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Finish4(float* y0, Vector128<float> t, TW* w0, float* xr, int kk)
        {
            for (; kk < k; kk++)
                t += Vector128.Create(Weights<TV, TW>.At(w0 + kk), Weights<TV, TW>.At(w0 + k + kk), Weights<TV, TW>.At(w0 + 2 * k + kk), Weights<TV, TW>.At(w0 + 3 * k + kk)) * xr[kk];
            var a = Vector128.Create(alpha);
            (accumulate ? Vector128.Load(y0) + a * t : a * t).Store(y0);
        }
    }
}

/// <summary>
/// Loads of a weight element type as float32 vectors: float as is, ushort as bf16 widened by a 16-bit shift (<see cref="IO.BFloat16"/>). A
/// generic over value types: the JIT compiles one body per element type and drops the other branch.
/// </summary>
internal static unsafe class Weights<TV, TW> where TV : unmanaged, ILanes<TV> where TW : unmanaged
{
    // Only float and ushort (bf16) are instantiated: RowDot.MatmulNT's and MixedLora.Expand's entry points take those.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV Load(TW* p) => typeof(TW) == typeof(float) ? TV.Load((float*)p) : TV.LoadBf16((ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float At(TW* p) => typeof(TW) == typeof(float) ? *(float*)p : IO.BFloat16.ToSingle(*(ushort*)p);
}

/// <summary>
/// The one lane reduction of <see cref="RowDot"/>: a vector accumulator is folded to four lanes (<see cref="ILanes{TSelf}.Fold"/>),
/// then q = (q0 + q2) + (q1 + q3). <see cref="Sum4"/> does four of them at once with the same additions (a 4x4 transpose
/// instead of four horizontal sums), which is what makes short dot products (LoRA's rank side, k = 16) cheap.
/// </summary>
internal static class Lanes
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum(Vector128<float> q) => (q.GetElement(0) + q.GetElement(2)) + (q.GetElement(1) + q.GetElement(3));

    /// <summary>[Sum(a), Sum(b), Sum(c), Sum(d)], bit for bit.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float> d)
    {
        if (!Sse.IsSupported) return Vector128.Create(Sum(a), Sum(b), Sum(c), Sum(d));
        // [a0+a2, b0+b2, a1+a3, b1+b3] and the same for c, d; then the low halves plus the high halves.
        var ab = Sse.UnpackLow(a, b) + Sse.UnpackHigh(a, b);
        var cd = Sse.UnpackLow(c, d) + Sse.UnpackHigh(c, d);
        return Sse.MoveLowToHigh(ab, cd) + Sse.MoveHighToLow(cd, ab);
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
    /// <summary>Count bf16 values (ushorts) widened to float32.</summary>
    static abstract TSelf LoadBf16(ushort* p);
    static abstract TSelf Splat(float v);
    static abstract void Store(TSelf v, float* p);
    /// <summary>y + s·a as two roundings (a multiply, then an add), as C# evaluates the scalar y + s * a.</summary>
    static abstract TSelf AddScaled(TSelf y, TSelf s, TSelf a);
    /// <summary>a·b + acc, fused.</summary>
    static abstract TSelf Fma(TSelf a, TSelf b, TSelf acc);
    /// <summary>The lanes added pairwise down to four: the first step of <see cref="Lanes"/>' reduction.</summary>
    static abstract Vector128<float> Fold(TSelf v);
}

internal readonly unsafe struct Lanes512(Vector512<float> v) : ILanes<Lanes512>
{
    private readonly Vector512<float> _v = v;
    public static int Count => Vector512<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Load(float* p) => new(Vector512.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes512 LoadBf16(ushort* p) => new(Vector512.ShiftLeft(Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Splat(float v) => new(Vector512.Create(v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Lanes512 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 AddScaled(Lanes512 y, Lanes512 s, Lanes512 a) => new(y._v + s._v * a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes512 Fma(Lanes512 a, Lanes512 b, Lanes512 acc) => new(Vector512.FusedMultiplyAdd(a._v, b._v, acc._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Fold(Lanes512 v)
    {
        var h = v._v.GetLower() + v._v.GetUpper();
        return h.GetLower() + h.GetUpper();
    }
}

internal readonly unsafe struct Lanes256(Vector256<float> v) : ILanes<Lanes256>
{
    private readonly Vector256<float> _v = v;
    public static int Count => Vector256<float>.Count;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Load(float* p) => new(Vector256.Load(p));
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Lanes256 LoadBf16(ushort* p) => new(Vector256.ShiftLeft(Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe()), 16).AsSingle());
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Splat(float v) => new(Vector256.Create(v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Lanes256 v, float* p) => v._v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 AddScaled(Lanes256 y, Lanes256 s, Lanes256 a) => new(y._v + s._v * a._v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Lanes256 Fma(Lanes256 a, Lanes256 b, Lanes256 acc) => new(Vector256.FusedMultiplyAdd(a._v, b._v, acc._v));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Fold(Lanes256 v) => v._v.GetLower() + v._v.GetUpper();
}
