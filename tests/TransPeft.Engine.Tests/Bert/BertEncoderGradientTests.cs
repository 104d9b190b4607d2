using TransPeft.Engine.Compute.Cpu.Bert;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training.Bert;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Bert;

/// <summary>
/// The whole BERT encoder + LoRA + pooling + classification head + cross-entropy, backward against float64 central
/// differences for every tensor, on a tiny random encoder with padding, with and without Trans-PEFT perturbations.
/// </summary>
public sealed class BertEncoderGradientTests
{
    private static readonly BertConfig Tiny = new()
    {
        VocabSize = 13, HiddenSize = 8, NumLayers = 2, NumHeads = 2, IntermediateSize = 12, MaxPositionEmbeddings = 6, TypeVocabSize = 2, LayerNormEps = 1e-5,
    };

    /// <summary>Drops the FFN of the layers given and masks intermediate element j of row i when (i + 2j + layer) % 3 == 0.</summary>
    private sealed class FixedPerturbation(params int[] dropped) : FfnPerturbation
    {
        public override bool IsDropped(int layer) => dropped.Contains(layer);
        public override bool HasMask => true;
        public override void FillMask(int layer, int row0, int rows, int intermediate, Span<float> dst)
        {
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < intermediate; j++) dst[i * intermediate + j] = (row0 + i + 2 * j + layer) % 3 == 0 ? 0f : 1f;
        }
    }

    public static TheoryData<string, int> Cases => new() { { "plain", 0 }, { "mask only", 1 }, { "mask + drop layer 1", 2 } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void EveryTensorGradientMatchesFiniteDifferences(string name, int variant)
    {
        var rng = new Random(11 + variant);
        var p = BertParams<double>.Create(Tiny, n => Enumerable.Range(0, BertWeights.ExpectedShapes(Tiny).Single(x => x.Name == n).Shape.Aggregate(1, (a, b) => a * (int)b))
            .Select(_ => (float)(rng.NextDouble() * 2 - 1) * (n.Contains("LayerNorm.weight") ? 0.5f : 1f) + (n.Contains("LayerNorm.weight") ? 1f : 0f)).ToArray());
        var withLora = BertSequenceClassifier.WithFreshLora(p, 2, 4, rng);
        foreach (var lin in withLora.Linears)
            for (int i = 0; i < lin.Lora!.B.Data.Length; i++) lin.Lora.B.Data[i] = rng.NextDouble() - 0.5; // B = 0 would hide dA
        var head = BertSequenceClassifier.NewHead<double>(Tiny.HiddenSize, 3, rng);
        var tensors = new List<BertTensor<double>>
        {
            withLora.WordEmbeddings, withLora.PositionEmbeddings, withLora.TokenTypeEmbeddings, withLora.EmbeddingLnWeight, withLora.EmbeddingLnBias, head.Weight, head.Bias,
        };
        foreach (var l in withLora.Layers)
        {
            tensors.AddRange([l.AttentionLnWeight, l.AttentionLnBias, l.OutputLnWeight, l.OutputLnBias]);
            foreach (var lin in l.Linears) tensors.AddRange([lin.Weight, lin.Bias, lin.Lora!.A, lin.Lora.B]);
        }
        foreach (var t in tensors) t.EnableGrad();
        int[][] seqs = [[1, 5, 7, 9, 2], [1, 3, 2], [1, 12, 4, 2]];
        int[] labels = [0, 2, 1];
        FfnPerturbation? pert = variant switch { 0 => null, 1 => new FixedPerturbation(), _ => new FixedPerturbation(1) };
        var encoder = new BertEncoder<double>(withLora);
        foreach (var pool in new[] { BertPooling.Mean, BertPooling.Cls })
        {
            foreach (var t in tensors) t.ZeroGrad();
            BertSequenceClassifier.ForwardBackward(encoder, head, seqs, labels, pool, 3, pert);
            var grads = tensors.Select(t => (double[])t.Grad!.Clone()).ToList();
            double Loss() => BertSequenceClassifier.ForwardBackward(new BertEncoder<double>(withLora), head, seqs, labels, pool, 3, pert);
            for (int i = 0; i < tensors.Count; i++)
            {
                var want = FiniteDifference.Gradient(Loss, tensors[i].Data);
                FiniteDifference.AssertClose($"{name}, {pool}: d{tensors[i].Name}", want, grads[i], 1e-6);
            }
        }
    }

    [Fact]
    public void DroppedLayerKeepsItsOutputLayerNormOverTheResidual()
    {
        var rng = new Random(3);
        var p = BertParams<double>.Create(Tiny, n => Enumerable.Range(0, BertWeights.ExpectedShapes(Tiny).Single(x => x.Name == n).Shape.Aggregate(1, (a, b) => a * (int)b))
            .Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray());
        int[] ids = [1, 4, 2];
        var full = (double[])new BertEncoder<double>(p).Forward(ids, null, [3], 1, 3).Clone();
        var dropped = (double[])new BertEncoder<double>(p).Forward(ids, null, [3], 1, 3, new FixedPerturbation(0, 1)).Clone();
        Assert.NotEqual(full, dropped);
        // With both FFNs dropped, each token's output is still LayerNorm'd: mean ≈ bias mean pattern, i.e. (y − b)/w has mean 0 and variance 1.
        var last = p.Layers[^1];
        for (int row = 0; row < 3; row++)
        {
            var z = Enumerable.Range(0, 8).Select(j => (dropped[row * 8 + j] - last.OutputLnBias.Data[j]) / last.OutputLnWeight.Data[j]).ToArray();
            Assert.Equal(0, z.Average(), 9);
            Assert.Equal(1, z.Select(v => v * v).Average(), 4);
        }
    }
}
