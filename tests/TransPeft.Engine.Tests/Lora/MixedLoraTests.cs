using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cuda.Backend;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Lora;

/// <summary>
/// Mixed-adapter LoRA (one batch, rows on different adapters or none): every row gets what the single-adapter
/// linear layer (<see cref="CpuLinear"/>) gives it when that row is run alone with its own adapter, and what a plain
/// float64 triple loop gives it.
/// </summary>
public class MixedLoraTests
{
    private const int In = 40, Out = 27;

    private static float[] Rand(Random rng, int n) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    private static LoraModule Adapter(Random rng, int rank, float scaling) =>
        new(0, Projection.Q, new Parameter("A", [rank, In], Rand(rng, rank * In)), new Parameter("B", [Out, rank], Rand(rng, Out * rank)), scaling);

    public static IEnumerable<object[]> Batches() =>
    [
        [new[] { 0, 0, 0, 1, 1, -1, 2, 2, 2, 2 }],           // grouped by adapter, one base-only row
        [new[] { 1, 0, 1, 0, -1, 2, -1, 1 }],                // interleaved: one segment per row
        [new[] { -1, -1, -1 }],                              // base model only
        [Enumerable.Range(0, 70).Select(i => i / 20 - 1).ToArray()], // segments longer than the GEMM's 6-row strips
        [new[] { 3, 3, 0 }],                                 // slot 3 does not adapt this projection
    ];

    /// <summary>The slots <see cref="MixedLora"/> reads for <paramref name="modules"/> (default where null), each module in
    /// its own <see cref="CpuLoraImage"/>; <paramref name="keep"/> holds the images alive while the slots are used.</summary>
    internal static LoraSlot[] Slots(IReadOnlyList<LoraModule?> modules, bool bf16, List<CpuLoraImage> keep) =>
        [.. modules.Select(m =>
        {
            if (m is null) return default;
            var image = CpuLoraImage.Build([m], m.Layer + 1, bf16);
            keep.Add(image);
            return image[m.Layer, m.Projection];
        })];

    [Theory, MemberData(nameof(Batches))]
    public void EveryRowGetsWhatItsAdapterGivesItAlone(int[] rowSlots)
    {
        var rng = new Random(rowSlots.Length * 31 + rowSlots[0]);
        // Ranks differ (4, 16, 1) and so do scalings; slot 3 is an adapter that has no module on this projection.
        LoraModule?[] slots = [Adapter(rng, 4, 2f), Adapter(rng, 16, 0.5f), Adapter(rng, 1, 1f), null];
        var w = new Parameter("W", [Out, In], Rand(rng, Out * In));
        var bias = new Parameter("b", [Out], Rand(rng, Out));
        int n = rowSlots.Length;
        var x = Rand(rng, n * In);

        var y = new float[n * Out];
        CpuLinear.Forward(y, x, n, w, bias, null, null, new float[n * In], StepContext.Eval);
        var keep = new List<CpuLoraImage>();
        MixedLora.Forward(y, x, n, In, Out, AdapterSegments.FromRowSlots(rowSlots), Slots(slots, bf16: false, keep), new float[n * 16]);
        GC.KeepAlive(keep); // the slots hold raw addresses into the images

        for (int i = 0; i < n; i++)
        {
            var lora = rowSlots[i] < 0 ? null : slots[rowSlots[i]];
            var xi = x.AsSpan(i * In, In).ToArray();
            var alone = new float[Out];
            CpuLinear.Forward(alone, xi, 1, w, bias, lora, new float[lora?.Rank ?? 1], new float[In], StepContext.Eval);
            var got = y.AsSpan(i * Out, Out).ToArray();
            for (int o = 0; o < Out; o++)
            {
                Assert.True(Math.Abs(alone[o] - got[o]) <= 1e-5f * (1 + Math.Abs(alone[o])), $"row {i} (slot {rowSlots[i]}) out {o}: alone {alone[o]}, mixed {got[o]}");
                double want = Reference(xi, w, bias, lora, o);
                Assert.True(Math.Abs(want - got[o]) <= 1e-4 * (1 + Math.Abs(want)), $"row {i} out {o}: reference {want}, mixed {got[o]}");
            }
        }
    }

    /// <summary>
    /// Adapters served at bf16: the result is bit for bit what the float32 image gives on the same weights rounded to bf16
    /// (widening is exact and the sums run in the same order), and within float32 tolerance of the float64 reference on the
    /// rounded weights.
    /// </summary>
    [Theory, MemberData(nameof(Batches))]
    public void Bf16AdaptersGiveTheFloat32ResultOfTheRoundedWeights(int[] rowSlots)
    {
        var rng = new Random(rowSlots.Length * 17 + 3);
        LoraModule?[] slots = [Adapter(rng, 4, 2f), Adapter(rng, 16, 0.5f), Adapter(rng, 1, 1f), null];
        LoraModule?[] rounded = [.. slots.Select(m => m is null ? null : new LoraModule(m.Layer, m.Projection,
            new Parameter("A", [m.Rank, In], Bf16Models.Rounded(m.A.Data)), new Parameter("B", [Out, m.Rank], Bf16Models.Rounded(m.B.Data)), m.Scaling))];
        int n = rowSlots.Length;
        var x = Rand(rng, n * In);
        var yBase = Rand(rng, n * Out);
        var segments = AdapterSegments.FromRowSlots(rowSlots);
        var keep = new List<CpuLoraImage>();
        var bf16 = (float[])yBase.Clone();
        MixedLora.Forward(bf16, x, n, In, Out, segments, Slots(slots, bf16: true, keep), new float[n * 16]);
        var f32 = (float[])yBase.Clone();
        MixedLora.Forward(f32, x, n, In, Out, segments, Slots(rounded, bf16: false, keep), new float[n * 16]);
        GC.KeepAlive(keep);
        Assert.Equal(f32, bf16);
        for (int i = 0; i < n; i++)
        {
            var lora = rowSlots[i] < 0 ? null : rounded[rowSlots[i]];
            for (int o = 0; o < Out; o++)
            {
                double want = yBase[i * Out + o] + LoraReference(x.AsSpan(i * In, In).ToArray(), lora, o);
                Assert.True(Math.Abs(want - bf16[i * Out + o]) <= 1e-4 * (1 + Math.Abs(want)), $"row {i} out {o}: reference {want}, bf16 {bf16[i * Out + o]}");
            }
        }
    }

    /// <summary>The expand (y += s·t·Bᵀ) gives the same bits at both vector widths and for every tile a row lands in: each
    /// output is one fused chain over the rank in order, whatever computes it.</summary>
    [Theory]
    [InlineData(1, 16, 688)]
    [InlineData(7, 16, 130)]
    [InlineData(9, 3, 37)]
    [InlineData(5, 16, 45)]  // 45 = 32 + 13: AVX2 does columns 32..39 as a vector, AVX-512 in the scalar tail
    [InlineData(6, 7, 27)]   // 27 = 16 + 11: likewise for columns 16..23
    public unsafe void TheExpandGivesEveryRowTheSameBitsAtEveryWidthAndPlace(int rows, int r, int outDim)
    {
        var rng = new Random(rows * 100 + outDim);
        var t = Rand(rng, rows * r);
        var bt = Rand(rng, r * outDim);
        var y0 = Rand(rng, rows * outDim);
        float[] wide = (float[])y0.Clone(), narrow = (float[])y0.Clone();
        fixed (float* pt = t, pb = bt, pw = wide, pn = narrow)
        {
            if (System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated) MixedLora.Expand<Lanes512, float>(pw, pt, pb, rows, r, outDim, outDim, 0.75f);
            else MixedLora.Expand<Lanes256, float>(pw, pt, pb, rows, r, outDim, outDim, 0.75f);
            MixedLora.Expand<Lanes256, float>(pn, pt, pb, rows, r, outDim, outDim, 0.75f);
        }
        Assert.Equal(wide, narrow);
        for (int i = 0; i < rows; i++)
        {
            // The scalar recipe every output follows: a fused chain over the rank in order, then y + s·acc.
            for (int o = 0; o < outDim; o++)
            {
                float acc = 0f;
                for (int j = 0; j < r; j++) acc = MathF.FusedMultiplyAdd(bt[j * outDim + o], t[i * r + j], acc);
                Assert.Equal(y0[i * outDim + o] + 0.75f * acc, wide[i * outDim + o]);
            }
            // Each row alone, as a one-row batch, and as column blocks of a wider row (the parallel split's unit).
            var alone = y0.AsSpan(i * outDim, outDim).ToArray();
            var ti = t.AsSpan(i * r, r).ToArray();
            fixed (float* pt = ti, pb = bt, pa = alone)
            {
                int half = outDim / 2;
                MixedLora.Expand(pa, pt, pb, 1, r, half, outDim, 0.75f);
                MixedLora.Expand(pa + half, pt, pb + half, 1, r, outDim - half, outDim, 0.75f);
            }
            Assert.Equal(alone, wide.AsSpan(i * outDim, outDim).ToArray());
        }
    }

    /// <summary>With threads, the segments' products split across them (shrinks by segment, expands by segment and column
    /// block): the same bits as one thread.</summary>
    [Fact]
    public void ASplitAcrossThreadsGivesTheBitsOfOneThread()
    {
        const int inDim = 300, outDim = 700, n = 40;
        var rng = new Random(77);
        LoraModule Big(int rank) => new(0, Projection.Q, new Parameter("A", [rank, inDim], Rand(rng, rank * inDim)), new Parameter("B", [outDim, rank], Rand(rng, outDim * rank)), 0.5f);
        LoraModule?[] modules = [Big(16), Big(8)];
        var keep = new List<CpuLoraImage>();
        var slots = Slots(modules, bf16: false, keep);
        var x = Rand(rng, n * inDim);
        var rowSlots = Enumerable.Range(0, n).Select(i => i < 30 ? 0 : i < 35 ? -1 : 1).ToArray();
        var segments = AdapterSegments.FromRowSlots(rowSlots);
        var y1 = new float[n * outDim];
        var y2 = new float[n * outDim];
        using (CpuParallel.Use(1)) MixedLora.Forward(y1, x, n, inDim, outDim, segments, slots, new float[n * 16]);
        using (CpuParallel.Use(2)) MixedLora.Forward(y2, x, n, inDim, outDim, segments, slots, new float[n * 16]);
        GC.KeepAlive(keep);
        Assert.Equal(y1, y2);
        Assert.NotEqual(new float[outDim], y1.AsSpan(0, outDim).ToArray());
    }

    /// <summary>s·Σ_j (x·A[j]ᵀ)·B[o, j] in float64 (0 without a module).</summary>
    private static double LoraReference(float[] x, LoraModule? lora, int o)
    {
        if (lora is null) return 0;
        double acc = 0;
        for (int j = 0; j < lora.Rank; j++)
        {
            double t = 0;
            for (int k = 0; k < In; k++) t += (double)x[k] * lora.A.Data[j * In + k];
            acc += lora.Scaling * t * lora.B.Data[o * lora.Rank + j];
        }
        return acc;
    }

    /// <summary>y[o] = x·W[o]ᵀ + b[o] + s·Σ_j (x·A[j]ᵀ)·B[o, j], in float64.</summary>
    private static double Reference(float[] x, Parameter w, Parameter bias, LoraModule? lora, int o)
    {
        double acc = bias.Data[o];
        for (int k = 0; k < In; k++) acc += (double)x[k] * w.Data[o * In + k];
        return acc + LoraReference(x, lora, o);
    }

    [Fact]
    public void SegmentsAreMaximalRunsOfOneSlot()
    {
        var s = AdapterSegments.FromRowSlots([2, 2, -1, 0, 0, 0, 2]);
        Assert.Equal([0, 2, 3, 6, 7], s.Starts);
        Assert.Equal([2, -1, 0, 2], s.Slots);
        Assert.Equal(7, s.Rows);
        var empty = AdapterSegments.FromRowSlots([]);
        Assert.Equal(0, empty.Count);
        Assert.Equal([0], empty.Starts);
    }

    [Fact]
    public void BadSlotsAndShapesAreRefusedWithTheirNames()
    {
        var rng = new Random(5);
        var x = Rand(rng, 2 * In);
        var y = new float[2 * Out];
        var keep = new List<CpuLoraImage>();
        var one = Slots([Adapter(rng, 2, 1f)], bf16: false, keep);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => MixedLora.Forward(y, x, 2, In, Out, AdapterSegments.FromRowSlots([0, 4]), one, new float[64]));
        Assert.Contains("adapter slot 4; 1 slots are loaded", e.Message);
        var wrong = new LoraModule(1, Projection.K, new Parameter("A", [2, In + 1], new float[2 * (In + 1)]), new Parameter("B", [Out, 2], new float[Out * 2]), 1f);
        var wrongSlots = Slots([wrong], bf16: false, keep);
        var shape = Assert.Throws<ArgumentException>(() => MixedLora.Forward(y, x, 2, In, Out, AdapterSegments.FromRowSlots([0, 0]), wrongSlots, new float[64]));
        Assert.Contains("model.layers.1.self_attn.k_proj", shape.Message);
        GC.KeepAlive(keep);
        Assert.Throws<ArgumentOutOfRangeException>(() => AdapterSegments.FromRowSlots([0, -2]));
    }
}
