using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Tests.Bert;

/// <summary>
/// The engine's BERT against ONNX Runtime running the packages' own ONNX files: last_hidden_state within 1e-4
/// on every token of 24 real sentences, for both models, and the published MiniLM similarity.
/// </summary>
[Collection(BertPackagesCollection.Name)]
public sealed class BertParityTests(BertPackages packages)
{
    [SkippableTheory]
    [InlineData(BertPackages.MiniLm)]
    [InlineData(BertPackages.Arctic)]
    public void LastHiddenStateMatchesOnnxRuntime(string id)
    {
        var (dir, onnx) = packages.Import(id);
        var model = BertModel.Load(dir);
        var embedder = new BertEmbedder(model);
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(onnx, options);
        int h = model.Config.HiddenSize;
        double worst = 0;
        string worstAt = "";
        foreach (var text in BertPackages.Sentences)
        {
            var ids = model.Encode(text, 128);
            var ours = embedder.LastHiddenState(ids);
            var theirs = RunOnnx(session, ids);
            Assert.Equal(theirs.Length, ours.Length);
            for (int i = 0; i < ours.Length; i++)
            {
                Assert.True(float.IsFinite(ours[i]), $"{id}: non-finite output for \"{text}\" at token {i / h}");
                double e = Math.Abs(ours[i] - theirs[i]);
                if (e > worst) { worst = e; worstAt = $"\"{text}\" token {i / h} dim {i % h}"; }
            }
        }
        Assert.True(worst <= 1e-4, $"{id}: worst |engine − ONNX Runtime| = {worst:E2} at {worstAt}");
    }

    [SkippableFact]
    public void MiniLmMeanPooledCosineIsThePublishedValue()
    {
        var model = BertModel.Load(packages.Import(BertPackages.MiniLm).Dir);
        Assert.Equal(BertPooling.Mean, model.DefaultPooling);
        Assert.Equal([101, 1037, 2158, 2003, 5983, 2833, 1012, 102], model.Encode("A man is eating food.", 128));
        var e = new BertEmbedder(model).Embed(BertPackages.Sentences[..3], normalize: true);
        Assert.Equal(0.7553, BertEmbedder.Cosine(e[0], e[1]), 4);
        Assert.Equal(0.2474, BertEmbedder.Cosine(e[0], e[2]), 4);
    }

    [SkippableFact]
    public void PaddedBatchesGiveTheSameEmbeddingsAsSingleTexts()
    {
        foreach (var id in new[] { BertPackages.MiniLm, BertPackages.Arctic })
        {
            var model = BertModel.Load(packages.Import(id).Dir);
            var embedder = new BertEmbedder(model);
            var texts = BertPackages.Sentences[..8];
            var batched = embedder.Embed(texts, batchSize: 8);
            for (int i = 0; i < texts.Length; i++)
            {
                var single = embedder.Embed([texts[i]], batchSize: 1)[0];
                for (int j = 0; j < single.Length; j++)
                    Assert.True(Math.Abs(single[j] - batched[i][j]) < 1e-5, $"{id} text {i} dim {j}: batched {batched[i][j]} vs single {single[j]}");
            }
        }
    }

    [SkippableFact]
    public void ArcticUsesClsPoolingAndDiffersFromMiniLm()
    {
        var arctic = BertModel.Load(packages.Import(BertPackages.Arctic).Dir);
        var mini = BertModel.Load(packages.Import(BertPackages.MiniLm).Dir);
        Assert.Equal(BertPooling.Cls, arctic.DefaultPooling);
        var ids = arctic.Encode(BertPackages.Sentences[0], 64);
        var cls = new BertEmbedder(arctic).Embed([BertPackages.Sentences[0]])[0];
        var hidden = new BertEmbedder(arctic).LastHiddenState(ids);
        Assert.Equal(hidden.AsSpan(0, cls.Length).ToArray(), cls);
        var other = new BertEmbedder(mini).LastHiddenState(ids);
        Assert.True(BertEmbedder.Cosine(hidden.AsSpan(0, cls.Length), other.AsSpan(0, cls.Length)) < 0.99, "the two models should be different weights");
    }

    internal static float[] RunOnnx(InferenceSession session, int[] ids)
    {
        int t = ids.Length;
        var inputs = new List<NamedOnnxValue>();
        foreach (var name in session.InputMetadata.Keys)
        {
            var values = name switch
            {
                "input_ids" => ids.Select(i => (long)i).ToArray(),
                "attention_mask" => Enumerable.Repeat(1L, t).ToArray(),
                "token_type_ids" => new long[t],
                _ => throw new InvalidOperationException($"unexpected ONNX input '{name}'"),
            };
            inputs.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(values, [1, t])));
        }
        using var results = session.Run(inputs);
        var output = results.FirstOrDefault(r => r.Name == "last_hidden_state") ?? results.First();
        return output.AsTensor<float>().ToArray();
    }
}
