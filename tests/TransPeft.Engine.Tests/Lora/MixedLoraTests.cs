using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
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
        MixedLora.Forward(y, x, n, In, Out, AdapterSegments.FromRowSlots(rowSlots), slots, new float[n * 16]);

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

    /// <summary>y[o] = x·W[o]ᵀ + b[o] + s·Σ_j (x·A[j]ᵀ)·B[o, j], in float64.</summary>
    private static double Reference(float[] x, Parameter w, Parameter bias, LoraModule? lora, int o)
    {
        double acc = bias.Data[o];
        for (int k = 0; k < In; k++) acc += (double)x[k] * w.Data[o * In + k];
        if (lora is null) return acc;
        for (int j = 0; j < lora.Rank; j++)
        {
            double t = 0;
            for (int k = 0; k < In; k++) t += (double)x[k] * lora.A.Data[j * In + k];
            acc += lora.Scaling * t * lora.B.Data[o * lora.Rank + j];
        }
        return acc;
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
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => MixedLora.Forward(y, x, 2, In, Out, AdapterSegments.FromRowSlots([0, 4]), [Adapter(rng, 2, 1f)], new float[64]));
        Assert.Contains("adapter slot 4; 1 slots are loaded", e.Message);
        var wrong = new LoraModule(1, Projection.K, new Parameter("A", [2, In + 1], new float[2 * (In + 1)]), new Parameter("B", [Out, 2], new float[Out * 2]), 1f);
        var shape = Assert.Throws<ArgumentException>(() => MixedLora.Forward(y, x, 2, In, Out, AdapterSegments.FromRowSlots([0, 0]), [wrong], new float[64]));
        Assert.Contains("model.layers.1.self_attn.k_proj", shape.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => AdapterSegments.FromRowSlots([0, -2]));
    }
}
