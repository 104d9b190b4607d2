using TransPeft.Engine.Analysis;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Analysis;

public class UpdateAnalyzerTests
{
    private static TokenBatch[] Data(ModelConfig c) =>
    [
        TokenBatch.FromIds(2, 9, TinyModels.RandomIds(18, c.VocabSize, 1)),
        TokenBatch.FromIds(3, 5, TinyModels.RandomIds(15, c.VocabSize, 2)),
    ];

    /// <summary>A copy of the model whose FFN weights (gate/up/down of every layer) are perturbed, nothing else.</summary>
    private static TransformerModel FfnUpdate(TransformerModel old, double scale)
    {
        var updated = old.Clone();
        var rng = new Random(17);
        foreach (var l in updated.Layers)
            foreach (var p in new[] { l.Gate, l.Up, l.Down })
                for (int i = 0; i < p.Length; i++) p.Data[i] += (float)((rng.NextDouble() - 0.5) * scale);
        return updated;
    }

    [Fact]
    public void FfnOnlyUpdateChangesFfnAndLeavesAttentionExactlyUnchanged()
    {
        var old = TinyModels.Model(5);
        var updated = FfnUpdate(old, 0.2);
        var a = UpdateAnalyzer.Analyze(old, updated, Data(old.Config), new AnalysisOptions { OldName = "v1", NewName = "v2", TopK = 5 });

        Assert.Equal(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "input_layernorm", "post_attention_layernorm"], a.Modules);
        for (int l = 0; l < 2; l++)
        {
            var row = a.RelativeChange[l];
            for (int m = 0; m < 4; m++) Assert.Equal(0.0, row[m]);      // q, k, v, o
            for (int m = 4; m < 7; m++) Assert.True(row[m] > 0.05, $"layer {l} {a.Modules[m]}: {row[m]}");
            Assert.Equal(0.0, row[7]); Assert.Equal(0.0, row[8]);       // norms
            Assert.Equal(0.0, a.Layers[l].Attention);
            Assert.Equal(0.0, a.Layers[l].Norms);
            Assert.True(a.Layers[l].Ffn > 0.05);
        }
        Assert.Equal(0.0, a.AttentionChange);
        Assert.True(a.FfnChange > 0.05);
        Assert.Equal(0.0, a.EmbeddingChange);
        Assert.Equal(0.0, a.LmHeadChange);
        Assert.Equal(0.0, a.FinalNormChange);

        // Uniform noise of width s has variance s²/12; weights ~ N(0, 0.2²): expected relative change ≈ sqrt(0.2²/12)/0.2.
        Assert.InRange(a.RelativeChange[0][4], 0.2 / Math.Sqrt(12) / 0.2 * 0.8, 0.2 / Math.Sqrt(12) / 0.2 * 1.2);

        var act = a.Activations!;
        Assert.Equal(2 * 9 + 3 * 5, act.Tokens);
        Assert.Equal(5, act.TopK);
        // Layer 0 sees the same embeddings through the same attention: identical outputs.
        Assert.Equal(1.0, act.Layers[0].AttentionCosine, 12);
        Assert.True(act.Layers[0].FfnCosine < 0.999, $"layer 0 FFN cosine {act.Layers[0].FfnCosine}");
        // Layer 1's attention input already differs (layer 0's FFN changed).
        Assert.True(act.Layers[1].AttentionCosine < 1 - 1e-6, $"layer 1 attention cosine {act.Layers[1].AttentionCosine}");
        Assert.All(act.Layers, l => Assert.InRange(l.TopKOverlap, 0, 1));
        Assert.All(act.Layers, l => Assert.True(l.FfnContributionOld > 0 && l.FfnContributionNew > 0));

        var json = a.ToJson();
        Assert.Contains("\"relative_change\"", json);
        Assert.Contains("\"attention_cosine\"", json);
    }

    [Fact]
    public void IdenticalModelsAgreeEverywhere()
    {
        var old = TinyModels.Model(6, tied: true);
        var a = UpdateAnalyzer.Analyze(old, old.Clone(), Data(old.Config));
        Assert.All(a.RelativeChange.SelectMany(r => r), x => Assert.Equal(0.0, x));
        Assert.Null(a.LmHeadChange); // tied head
        Assert.Equal(Math.Max(1, old.Config.IntermediateSize / 10), a.Activations!.TopK);
        foreach (var l in a.Activations.Layers)
        {
            Assert.Equal(1.0, l.AttentionCosine, 12);
            Assert.Equal(1.0, l.FfnCosine, 12);
            Assert.Equal(1.0, l.TopKJaccard);
            Assert.Equal(1.0, l.TopKOverlap);
            Assert.Equal(l.FfnContributionOld, l.FfnContributionNew);
        }
    }

    [Fact]
    public void WeightsOnlyWithoutData()
    {
        var old = TinyModels.Model(5);
        var a = UpdateAnalyzer.Analyze(old, FfnUpdate(old, 0.1));
        Assert.Null(a.Activations);
        Assert.True(a.FfnChange > 0);
    }

    [Fact]
    public void DifferentArchitecturesAreRefusedNamingTheFields()
    {
        var old = TinyModels.Model(5);
        var other = TransformerModel.CreateRandom(TinyModels.Config() with { IntermediateSize = 64, NumLayers = 3 }, 1);
        var e = Assert.Throws<ArgumentException>(() => UpdateAnalyzer.Analyze(old, other));
        Assert.Contains("intermediate_size 48 vs 64", e.Message);
        Assert.Contains("num_hidden_layers 2 vs 3", e.Message);
    }

    [Fact]
    public void TopKNeuronsByMeanMagnitude()
    {
        Assert.Equal([1, 3], UpdateAnalyzer.TopIndices([0.1, 0.5, 0.2, 0.9, 0.5], 2).Order());
        Assert.Equal([1, 3, 4], UpdateAnalyzer.TopIndices([0.1, 0.5, 0.2, 0.9, 0.5], 3).Order());
        Assert.Equal([0, 1], UpdateAnalyzer.TopIndices([1.0, 1.0, 1.0], 2).Order()); // ties: lower index first
    }

    [Fact]
    public void FfnContributionIsTheRatioOfFfnOutputToResidualNorm()
    {
        // Zeroing layer 0's down_proj makes its FFN output exactly zero: contribution 0 in that model only.
        var old = TinyModels.Model(5);
        var updated = old.Clone();
        Array.Clear(updated.Layers[0].Down.Data);
        var act = UpdateAnalyzer.Analyze(old, updated, Data(old.Config)).Activations!;
        Assert.Equal(0.0, act.Layers[0].FfnContributionNew);
        Assert.True(act.Layers[0].FfnContributionOld > 0);
        Assert.True(double.IsNaN(act.Layers[0].FfnCosine)); // cosine with a zero vector is undefined and reported as NaN
        Assert.Contains("NaN", UpdateAnalyzer.Analyze(old, updated, Data(old.Config)).ToJson());
    }

    [Fact]
    public void TableShowsEveryLayerAndModule()
    {
        var old = TinyModels.Model(5);
        var text = UpdateAnalysisTable.Render(UpdateAnalyzer.Analyze(old, FfnUpdate(old, 0.2), Data(old.Config), new AnalysisOptions { OldName = "v1", NewName = "v2" }));
        Assert.Contains("Update v1 -> v2 (llama, 2 layers)", text);
        Assert.Contains("gate_proj", text);
        Assert.Contains("post_norm", text);
        Assert.Contains("attn_cos", text);
        var layer0 = text.Split('\n').First(l => l.StartsWith("0 "));
        Assert.StartsWith("0  0.0000  0.0000  0.0000  0.0000", System.Text.RegularExpressions.Regex.Replace(layer0, " +", "  "));
    }
}
