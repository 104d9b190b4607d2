using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Analysis;

/// <summary>
/// Measures what an update did to a base model (Trans-PEFT's motivation: continued training moves FFN knowledge
/// more than attention). Weight changes need only the two models; activation comparisons run both models
/// (no adapter, no perturbation) on the same token batches through <see cref="CpuTransformer.ForwardObserved"/>.
/// </summary>
public static class UpdateAnalyzer
{
    /// <summary>Column order of <see cref="UpdateAnalysis.RelativeChange"/>.</summary>
    public static readonly IReadOnlyList<string> ModuleNames =
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "input_layernorm", "post_attention_layernorm"];

    /// <summary>
    /// Token batches of a data file for the activation comparison: text packed into sequences of
    /// <paramref name="seqLen"/> tokens (any training format; pre-tokenized records need no tokenizer), grouped into
    /// batches of equal-length sequences so no padding enters the statistics. At most <paramref name="maxBatches"/> (0 = all).
    /// </summary>
    public static IEnumerable<TokenBatch> ReadBatches(string path, Text.TokenizerInfo? tokenizer, ModelConfig config, string modelDir,
        int seqLen, int batchSize, int maxBatches)
    {
        if (seqLen < 2 || seqLen > config.MaxPositionEmbeddings)
            throw new ArgumentException($"sequence length: expected 2..{config.MaxPositionEmbeddings} (max_position_embeddings), got {seqLen}");
        if (batchSize <= 0) throw new ArgumentException($"batch size: expected a positive number, got {batchSize}");
        if (maxBatches < 0) throw new ArgumentException($"max batches: expected 0 (all) or a positive number, got {maxBatches}");
        var (ds, _) = Text.DatasetLoader.Load(path, Text.DatasetFormat.Auto, Text.DatasetTokenizer.ForModel(tokenizer, config, modelDir), seqLen, pack: true, cacheDir: null, vocabSize: config.VocabSize);
        return Batches(ds, batchSize, maxBatches);
    }

    private static IEnumerable<TokenBatch> Batches(Text.TokenizedDataset ds, int batchSize, int maxBatches)
    {
        int made = 0;
        // Packed text is all seq_len long except possibly the last sequence, which gets a batch of its own.
        foreach (var group in Enumerable.Range(0, ds.Count).GroupBy(ds.LengthOf).OrderByDescending(g => g.Key))
        {
            var idx = group.ToArray();
            for (int s = 0; s < idx.Length; s += batchSize)
            {
                if (maxBatches > 0 && made >= maxBatches) yield break;
                var rows = idx.AsSpan(s, Math.Min(batchSize, idx.Length - s)).ToArray();
                yield return Text.BatchBuilder.Build(ds, rows, group.Key, padToSeqLen: false);
                made++;
            }
        }
    }

    public static UpdateAnalysis Analyze(TransformerModel oldModel, TransformerModel newModel, IEnumerable<TokenBatch>? data = null, AnalysisOptions? options = null)
    {
        options ??= new AnalysisOptions();
        var shapeDiffs = ArchitectureDiff.Compare(oldModel.Config, newModel.Config).Where(d => d.AffectsShapes).ToList();
        if (shapeDiffs.Count > 0)
            throw new ArgumentException($"{options.OldName} and {options.NewName} are not the same architecture: " +
                string.Join("; ", shapeDiffs.Select(d => $"{d.Field} {d.Left} vs {d.Right}")));
        var c = oldModel.Config;

        // Weight changes: per tensor, and per group as the Frobenius norm of the concatenation.
        var table = new IReadOnlyList<double>[c.NumLayers];
        var layers = new LayerWeightChange[c.NumLayers];
        var attnAll = new WeightChange(); var ffnAll = new WeightChange();
        for (int l = 0; l < c.NumLayers; l++)
        {
            LayerWeights o = oldModel.Layers[l], n = newModel.Layers[l];
            var row = new double[ModuleNames.Count];
            var attn = new WeightChange(); var ffn = new WeightChange(); var norms = new WeightChange();
            foreach (var p in ProjectionNames.All)
            {
                var f = WeightChange.Of(o.Weight(p), n.Weight(p));
                row[(int)p] = f.Relative;
                (p.IsFfn() ? ffn : attn).Add(f);
            }
            var n1 = WeightChange.Of(o.InputNorm, n.InputNorm);
            var n2 = WeightChange.Of(o.PostNorm, n.PostNorm);
            row[7] = n1.Relative; row[8] = n2.Relative;
            norms.Add(n1); norms.Add(n2);
            attnAll.Add(attn); ffnAll.Add(ffn);
            table[l] = row;
            layers[l] = new LayerWeightChange(l, attn.Relative, ffn.Relative, norms.Relative);
        }

        return new UpdateAnalysis
        {
            OldModel = options.OldName, NewModel = options.NewName, ModelType = c.ModelType, NumLayers = c.NumLayers,
            Modules = ModuleNames, RelativeChange = table, Layers = layers,
            AttentionChange = attnAll.Relative, FfnChange = ffnAll.Relative,
            EmbeddingChange = WeightChange.Of(oldModel.Embed, newModel.Embed).Relative,
            LmHeadChange = oldModel.LmHead is { } oh && newModel.LmHead is { } nh ? WeightChange.Of(oh, nh).Relative : null,
            FinalNormChange = WeightChange.Of(oldModel.FinalNorm, newModel.FinalNorm).Relative,
            Activations = data is null ? null : CompareActivations(oldModel, newModel, data, options.TopK ?? Math.Max(1, c.IntermediateSize / 10)),
        };
    }

    private static ActivationComparison CompareActivations(TransformerModel oldModel, TransformerModel newModel, IEnumerable<TokenBatch> data, int topK)
    {
        var c = oldModel.Config;
        if (topK < 1 || topK > c.IntermediateSize) throw new ArgumentOutOfRangeException(nameof(topK), $"top-k must be in [1, intermediate_size = {c.IntermediateSize}], got {topK}");
        var oldCpu = CpuTransformer.ForInference(oldModel);
        var newCpu = CpuTransformer.ForInference(newModel);
        var oldStats = new ActivationRecorder(c, reference: null);
        var newStats = new ActivationRecorder(c, reference: oldStats);
        long tokens = 0;
        foreach (var batch in data)
        {
            int n = batch.BatchSize * batch.SeqLen;
            oldStats.BeginBatch(n); newStats.BeginBatch(n);
            oldCpu.ForwardObserved(batch.InputIds, batch.BatchSize, batch.SeqLen, oldStats);
            newCpu.ForwardObserved(batch.InputIds, batch.BatchSize, batch.SeqLen, newStats);
            tokens += n;
        }
        if (tokens == 0) throw new ArgumentException("the analysis data holds no tokens");

        var result = new LayerActivationComparison[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            var a = TopIndices(oldStats.NeuronAbsSum[l], topK);
            var b = TopIndices(newStats.NeuronAbsSum[l], topK);
            int common = a.Intersect(b).Count();
            result[l] = new LayerActivationComparison(l,
                newStats.AttentionCosine(l), newStats.FfnCosine(l),
                (double)common / (2 * topK - common), (double)common / topK,
                oldStats.FfnContribution(l), newStats.FfnContribution(l));
        }
        return new ActivationComparison(tokens, topK, result);
    }

    /// <summary>Indices of the k largest values (ties broken by the lower index).</summary>
    internal static HashSet<int> TopIndices(double[] values, int k) =>
        Enumerable.Range(0, values.Length).OrderByDescending(i => values[i]).ThenBy(i => i).Take(k).ToHashSet();
}
