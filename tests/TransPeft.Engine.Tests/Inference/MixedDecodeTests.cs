using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Inference;

/// <summary>
/// The mixed-adapter decode step (one base GEMM over all sequences, LoRA per adapter segment, attention per sequence)
/// against each sequence decoded alone through the single-adapter KV-cached path, over several steps, with different
/// prompt lengths, adapters of different ranks and targets, and base-only rows.
/// </summary>
public class MixedDecodeTests
{
    [Theory]
    [InlineData("llama", false, new[] { 0, 0, 1, -1, 2, 1 })]
    [InlineData("qwen2", true, new[] { 2, -1, 0 })]
    [InlineData("llama", false, new[] { -1 })]
    public void EverySequenceGetsTheLogitsItGetsAlone(string type, bool tied, int[] rowSlots)
    {
        var model = TinyModels.Model(5, type, tied);
        var c = model.Config;
        LoraAdapter?[] adapters =
        [
            TinyModels.TrainedAdapter(c, seed: 11),
            Adapter(c, 8, ["q_proj", "v_proj"], 12),    // a different rank and only attention targets
            TinyModels.TrainedAdapter(c, seed: 13),
        ];
        int n = rowSlots.Length, v = c.VocabSize, steps = 5;
        var alone = new CpuTransformer[n];
        var aloneCaches = new KvCache[n];
        var mixedCaches = new KvCache[n];
        var aloneLogits = new float[n][];
        var next = new int[n];
        for (int i = 0; i < n; i++)
        {
            alone[i] = CpuTransformer.ForInference(model, rowSlots[i] < 0 ? null : adapters[rowSlots[i]]);
            int promptLen = 2 + i % 4;
            var prompt = TinyModels.RandomIds(promptLen, v, 20 + i);
            aloneCaches[i] = new KvCache(c, 1, promptLen + steps);
            mixedCaches[i] = new KvCache(c, 1, promptLen + steps);
            aloneLogits[i] = alone[i].ForwardCached(aloneCaches[i], prompt, 1, promptLen);
            alone[i].ForwardCached(mixedCaches[i], prompt, 1, promptLen); // the prompt is prefilled per sequence
            next[i] = Sampling.ArgMax(aloneLogits[i]);
        }
        var decoder = new CpuMixedDecoder(model);
        var images = adapters.Select(a => a is null ? null : CpuLoraImage.Build(a, bf16: false)).ToArray();
        var mixed = new float[n * v];
        for (int s = 0; s < steps; s++)
        {
            decoder.Decode(next, mixedCaches, rowSlots, images, mixed);
            for (int i = 0; i < n; i++)
            {
                aloneLogits[i] = alone[i].ForwardCached(aloneCaches[i], [next[i]], 1, 1);
                for (int j = 0; j < v; j++)
                    Assert.True(Math.Abs(aloneLogits[i][j] - mixed[i * v + j]) < 2e-5,
                        $"step {s} row {i} (slot {rowSlots[i]}) token {j}: alone {aloneLogits[i][j]}, mixed {mixed[i * v + j]}");
                Assert.Equal(aloneCaches[i].Length, mixedCaches[i].Length);
                next[i] = Sampling.ArgMax(aloneLogits[i]);
            }
        }
    }

    [Fact]
    public void ASequenceGetsBitIdenticalLogitsAloneAndInAnyBatch()
    {
        var model = TinyModels.Model(6);
        var c = model.Config;
        var adapter = TinyModels.TrainedAdapter(c, seed: 3);
        var prefill = CpuTransformer.ForInference(model, adapter);
        var decoder = new CpuMixedDecoder(model);
        KvCache Fresh(int seed)
        {
            var cache = new KvCache(c, 1, 8);
            prefill.ForwardCached(cache, TinyModels.RandomIds(3, c.VocabSize, seed), 1, 3);
            return cache;
        }
        var alone = new float[c.VocabSize];
        CpuLoraImage[] image = [CpuLoraImage.Build(adapter, bf16: false)];
        decoder.Decode([5], [Fresh(1)], [0], image, alone);
        foreach (int batch in new[] { 2, 5, 7 })
        {
            var caches = Enumerable.Range(0, batch).Select(i => Fresh(i == batch - 1 ? 1 : 10 + i)).ToArray();
            var ids = Enumerable.Range(0, batch).Select(i => i == batch - 1 ? 5 : i).ToArray();
            var logits = new float[batch * c.VocabSize];
            decoder.Decode(ids, caches, Enumerable.Repeat(0, batch).ToArray(), image, logits);
            Assert.Equal(alone, logits.AsSpan((batch - 1) * c.VocabSize, c.VocabSize).ToArray());
        }
    }

    /// <summary>With threads the rows attend in parallel and the LoRA products split: the logits and the caches are
    /// the bits of one thread, step after step.</summary>
    [Fact]
    public void ThreadsChangeNoBitOfTheStep()
    {
        // Long enough caches that the step's attention splits across threads (it stays on one thread below ~200K
        // multiply-adds), and wide enough projections that the LoRA products split too.
        var c = TinyModels.Config() with { HiddenSize = 64, IntermediateSize = 320, HeadDim = 16, MaxPositionEmbeddings = 512 };
        var model = Engine.Model.TransformerModel.CreateRandom(c, 6, initStd: 0.2);
        var adapter = TinyModels.TrainedAdapter(c, seed: 4);
        var prefill = CpuTransformer.ForInference(model, adapter);
        CpuLoraImage[] image = [CpuLoraImage.Build(adapter, bf16: false)];
        const int n = 12, steps = 4;
        (float[] Logits, KvCache[] Caches) Run(int threads)
        {
            using var scope = CpuParallel.Use(threads);
            var decoder = new CpuMixedDecoder(model);
            var caches = Enumerable.Range(0, n).Select(i =>
            {
                var cache = new KvCache(c, 1, 400);
                prefill.ForwardCached(cache, TinyModels.RandomIds(350 + i, c.VocabSize, 70 + i), 1, 350 + i);
                return cache;
            }).ToArray();
            var slots = Enumerable.Range(0, n).Select(i => i % 3 == 0 ? -1 : 0).ToArray();
            var logits = new float[n * c.VocabSize];
            for (int s = 0; s < steps; s++)
                decoder.Decode(Enumerable.Range(0, n).Select(i => (i * 7 + s) % c.VocabSize).ToArray(), caches, slots, image, logits);
            return (logits, caches);
        }
        var one = Run(1);
        var two = Run(2);
        Assert.Equal(one.Logits, two.Logits);
        for (int i = 0; i < n; i++)
            for (int l = 0; l < c.NumLayers; l++)
            {
                Assert.Equal(one.Caches[i].K[l], two.Caches[i].K[l]);
                Assert.Equal(one.Caches[i].V[l], two.Caches[i].V[l]);
            }
    }

    [Fact]
    public void AFullCacheOrAnIdOutsideTheVocabularyIsRefusedNamingTheRow()
    {
        var model = TinyModels.Model(5);
        var decoder = new CpuMixedDecoder(model);
        var full = new KvCache(model.Config, 1, 1);
        full.Length = 1;
        var ok = new KvCache(model.Config, 1, 4);
        var logits = new float[2 * model.Config.VocabSize];
        var e = Assert.Throws<ArgumentException>(() => decoder.Decode([1, 2], [ok, full], [-1, -1], [], logits));
        Assert.Contains("row 1: cache holds 1 positions, all used", e.Message);
        var id = Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Decode([1, 999], [ok, new KvCache(model.Config, 1, 4)], [-1, -1], [], logits));
        Assert.Contains("row 1: token id 999", id.Message);
        var twice = Assert.Throws<ArgumentException>(() => decoder.Decode([1, 2], [ok, ok], [-1, -1], [], logits));
        Assert.Contains("rows 0 and 1: the same KV cache twice", twice.Message);
        Assert.Equal(0, ok.Length); // nothing was written by a refused step
    }

    private static LoraAdapter Adapter(Engine.Model.ModelConfig c, int rank, string[] targets, int seed)
    {
        var a = LoraAdapter.Create(c, new LoraConfig { R = rank, Alpha = 16, TargetModules = [.. targets] }, seed);
        var rng = new Random(seed);
        foreach (var m in a.Modules())
            for (int i = 0; i < m.B.Length; i++) m.B.Data[i] = (float)(rng.NextDouble() - 0.5) * 0.2f;
        return a;
    }
}
