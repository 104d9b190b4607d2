using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// LoRA for a batch whose rows use different adapters (or none), the CPU form of punica's SGMV: for each segment of
/// rows that share adapter slot a, y[seg] += s_a · (x[seg]·A_aᵀ)·B_aᵀ, with A_a [r_a, in] and B_a [out, r_a] read from the
/// adapter's <see cref="CpuLoraImage"/> (B stored transposed, float32 or bf16). Like <see cref="CpuLinear"/> it
/// multiplies through the rank side first, so a segment costs rows · r_a · (in + out) and streams the adapter's weights
/// once, however many rows share it.
/// <list type="bullet">
/// <item>Shrink, t = x·Aᵀ: <see cref="RowDot"/> (depth in, r outputs).</item>
/// <item>Expand, y += s·t·Bᵀ: r axpys of a Bᵀ row over the output row (<see cref="Expand{TV, TW}"/>). Each output is one
/// fused multiply-add chain over j = 0..r-1 in order, then y + s·acc, whichever tile or vector width computes it, and
/// there is no lane sum: a dot product of depth r = 16 per output spent most of its time folding lanes.</item>
/// </list>
/// Both give a row the same bits whichever rows share its batch and segment, so a sequence gets bit-identical logits
/// alone or batched. Inference only: no dropout, no gradients (training has one adapter per model and goes through
/// <see cref="CpuLinear"/>). Run it after the base projection y = x·Wᵀ (+ b); rows of slot -1 keep the base output.
/// </summary>
internal static unsafe class MixedLora
{
    /// <summary>
    /// y[N,out] += LoRA of each row's adapter. <paramref name="slots"/>[a] is adapter a's module for this projection, or
    /// the default (rank 0) when adapter a does not adapt it (then its rows keep the base output, as they would alone).
    /// <paramref name="scratchT"/> holds at least N · (largest rank among the slots used) floats.
    /// </summary>
    public static void Forward(float[] y, float[] x, int n, int inDim, int outDim, AdapterSegments segments,
        ReadOnlySpan<LoraSlot> slots, float[] scratchT)
    {
        if (segments.Rows != n) throw new ArgumentException($"segments cover {segments.Rows} rows, the batch has {n}", nameof(segments));
        int maxRank = MaxRank(segments, slots, inDim, outDim);
        if (maxRank == 0) return;
        if (scratchT.Length < (long)n * maxRank) throw new ArgumentException($"scratchT holds {scratchT.Length} floats, {n} rows at rank {maxRank} need {(long)n * maxRank}", nameof(scratchT));
        fixed (float* py = y, px = x, pt = scratchT)
        fixed (LoraSlot* ps = slots)
        {
            var job = new Job(py, px, pt, ps, segments, inDim, outDim, maxRank);
            int count = segments.Count, blocks = (outDim + ColumnBlock - 1) / ColumnBlock;
            // One thread: each segment's shrink then its expand, nothing allocated. Across threads (a split boxes the job
            // into a delegate): every segment's shrink, then the expands by (segment, column block), so a batch of one
            // adapter splits too. A column block changes no output's operations, so the bits are the same either way.
            if (CpuParallel.Splits(count * blocks, (long)n * maxRank * (inDim + outDim) > 200_000)) AcrossThreads(job, count, blocks);
            else
                for (int i = 0; i < count; i++)
                {
                    job.Shrink(i);
                    job.Expand(i, 0, outDim);
                }
        }
    }

    /// <summary>The split path, in its own method so that the serial path allocates no closure.</summary>
    private static void AcrossThreads(Job job, int count, int blocks)
    {
        CpuParallel.For(count, job.Shrink);
        CpuParallel.For(count * blocks, k => job.ExpandBlock(k / blocks, k % blocks));
    }

    /// <summary>Output columns per parallel expand task (a multiple of every tile's width).</summary>
    private const int ColumnBlock = 256;

    private readonly struct Job(float* y, float* x, float* t, LoraSlot* slots, AdapterSegments segments, int inDim, int outDim, int maxRank)
    {
        /// <summary>Segment i's slot, or null for rows that keep the base output.</summary>
        private LoraSlot? Slot(int i) => segments.Slots[i] is int slot and >= 0 && slots[slot] is { Rank: > 0 } s ? s : null;

        /// <summary>t[seg] = x[seg]·Aᵀ.</summary>
        public void Shrink(int i)
        {
            if (Slot(i) is not { } s) return;
            int row0 = segments.Starts[i], rows = segments.Starts[i + 1] - row0;
            float* ti = t + (long)row0 * maxRank, xi = x + (long)row0 * inDim;
            if (s.Bf16) RowDot.MatmulNT(ti, xi, (ushort*)s.A, rows, inDim, s.Rank, accumulate: false, 1f);
            else RowDot.MatmulNT(ti, xi, (float*)s.A, rows, inDim, s.Rank, accumulate: false, 1f);
        }

        /// <summary>Segment i's expand on the <paramref name="block"/>-th <see cref="ColumnBlock"/> of output columns.</summary>
        public void ExpandBlock(int i, int block) => Expand(i, block * ColumnBlock, Math.Min(ColumnBlock, outDim - block * ColumnBlock));

        /// <summary>y[seg, o0 .. o0+cols) += s·t[seg]·Bᵀ[:, o0 .. o0+cols).</summary>
        public void Expand(int i, int o0, int cols)
        {
            if (Slot(i) is not { } s) return;
            int row0 = segments.Starts[i], rows = segments.Starts[i + 1] - row0;
            float* ti = t + (long)row0 * maxRank, yi = y + (long)row0 * outDim + o0;
            if (s.Bf16) MixedLora.Expand(yi, ti, (ushort*)s.Bt + o0, rows, s.Rank, cols, outDim, s.Scaling);
            else MixedLora.Expand(yi, ti, (float*)s.Bt + o0, rows, s.Rank, cols, outDim, s.Scaling);
        }
    }

    /// <summary>
    /// y[rows, cols] += s · t[rows, r]·Bᵀ[r, cols], float32 or bf16 Bᵀ: rows of t are r apart, rows of y and of Bᵀ
    /// <paramref name="ld"/> apart (ld = cols for a whole output row; larger for a block of its columns).
    /// </summary>
    public static void Expand<TW>(float* y, float* t, TW* bt, int rows, int r, int cols, int ld, float s) where TW : unmanaged
    {
        if (Vector512.IsHardwareAccelerated) Expand<Lanes512, TW>(y, t, bt, rows, r, cols, ld, s);
        else Expand<Lanes256, TW>(y, t, bt, rows, r, cols, ld, s);
    }

    /// <summary>
    /// The expand at a chosen vector width (<paramref name="outDim"/> columns; rows of y and Bᵀ <paramref name="ld"/> apart). Tiles: four rows against two vectors of outputs (each Bᵀ vector loaded once for
    /// four rows), then one row against four vectors, one vector, and the scalar tail. Every output gets the same operations
    /// in all of them (so the bits do not depend on the width either).
    /// </summary>
    internal static void Expand<TV, TW>(float* y, float* t, TW* bt, int rows, int r, int outDim, int ld, float s)
        where TV : unmanaged, ILanes<TV> where TW : unmanaged
    {
        int w = TV.Count;
        var sv = TV.Splat(s);
        int i = 0;
        for (; i + 4 <= rows; i += 4)
        {
            float* t0 = t + (long)i * r, t1 = t0 + r, t2 = t1 + r, t3 = t2 + r;
            float* y0 = y + (long)i * ld, y1 = y0 + ld, y2 = y1 + ld, y3 = y2 + ld;
            int o = 0;
            for (; o + 2 * w <= outDim; o += 2 * w)
            {
                TV a0 = default, a1 = default, b0 = default, b1 = default, c0 = default, c1 = default, d0 = default, d1 = default;
                TW* bj = bt + o;
                for (int j = 0; j < r; j++, bj += ld)
                {
                    TV w0 = Weights<TV, TW>.Load(bj), w1 = Weights<TV, TW>.Load(bj + w);
                    TV v = TV.Splat(t0[j]); a0 = TV.Fma(w0, v, a0); a1 = TV.Fma(w1, v, a1);
                    v = TV.Splat(t1[j]); b0 = TV.Fma(w0, v, b0); b1 = TV.Fma(w1, v, b1);
                    v = TV.Splat(t2[j]); c0 = TV.Fma(w0, v, c0); c1 = TV.Fma(w1, v, c1);
                    v = TV.Splat(t3[j]); d0 = TV.Fma(w0, v, d0); d1 = TV.Fma(w1, v, d1);
                }
                Put(y0 + o, sv, a0); Put(y0 + o + w, sv, a1);
                Put(y1 + o, sv, b0); Put(y1 + o + w, sv, b1);
                Put(y2 + o, sv, c0); Put(y2 + o + w, sv, c1);
                Put(y3 + o, sv, d0); Put(y3 + o + w, sv, d1);
            }
            for (int q = 0; q < 4; q++) Row<TV, TW>(y + (long)(i + q) * ld, t + (long)(i + q) * r, bt, r, outDim, ld, s, o);
        }
        for (; i < rows; i++) Row<TV, TW>(y + (long)i * ld, t + (long)i * r, bt, r, outDim, ld, s, 0);
    }

    /// <summary>One row's outputs from <paramref name="o"/> on: four vectors at a time, then one, then the scalar tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Row<TV, TW>(float* y, float* t, TW* bt, int r, int outDim, int ld, float s, int o)
        where TV : unmanaged, ILanes<TV> where TW : unmanaged
    {
        int w = TV.Count;
        var sv = TV.Splat(s);
        for (; o + 4 * w <= outDim; o += 4 * w)
        {
            TV a0 = default, a1 = default, a2 = default, a3 = default;
            TW* bj = bt + o;
            for (int j = 0; j < r; j++, bj += ld)
            {
                TV v = TV.Splat(t[j]);
                a0 = TV.Fma(Weights<TV, TW>.Load(bj), v, a0); a1 = TV.Fma(Weights<TV, TW>.Load(bj + w), v, a1);
                a2 = TV.Fma(Weights<TV, TW>.Load(bj + 2 * w), v, a2); a3 = TV.Fma(Weights<TV, TW>.Load(bj + 3 * w), v, a3);
            }
            Put(y + o, sv, a0); Put(y + o + w, sv, a1); Put(y + o + 2 * w, sv, a2); Put(y + o + 3 * w, sv, a3);
        }
        for (; o + w <= outDim; o += w)
        {
            TV a = default;
            TW* bj = bt + o;
            for (int j = 0; j < r; j++, bj += ld) a = TV.Fma(Weights<TV, TW>.Load(bj), TV.Splat(t[j]), a);
            Put(y + o, sv, a);
        }
        for (; o < outDim; o++)
        {
            float a = 0f;
            for (int j = 0; j < r; j++) a = MathF.FusedMultiplyAdd(Weights<TV, TW>.At(bt + (long)j * ld + o), t[j], a);
            y[o] = y[o] + s * a;
        }
    }

    /// <summary>y[0..width) = y + s·acc (a multiply, then an add: the scalar tail's y[o] + s * a).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put<TV>(float* y, TV s, TV acc) where TV : unmanaged, ILanes<TV> => TV.Store(TV.AddScaled(TV.Load(y), s, acc), y);

    /// <summary>Largest rank among the slots the segments use; checks each used module's shape against in/out.</summary>
    private static int MaxRank(AdapterSegments segments, ReadOnlySpan<LoraSlot> slots, int inDim, int outDim)
    {
        int maxRank = 0;
        foreach (int slot in segments.Slots)
        {
            if (slot < 0) continue;
            if (slot >= slots.Length) throw new ArgumentOutOfRangeException(nameof(segments), $"adapter slot {slot}; {slots.Length} slots are loaded");
            var s = slots[slot];
            if (s.Rank == 0) continue;
            if (s.In != inDim || s.Out != outDim)
                throw new ArgumentException($"adapter slot {slot} ({s.Projection.FullName(s.Layer)}) is [{s.Out}x{s.Rank}]·[{s.Rank}x{s.In}], the projection is [{outDim}x{inDim}]", nameof(slots));
            maxRank = Math.Max(maxRank, s.Rank);
        }
        return maxRank;
    }
}
