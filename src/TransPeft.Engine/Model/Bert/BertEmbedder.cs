using System.Numerics.Tensors;
using TransPeft.Engine.Compute.Cpu.Bert;

namespace TransPeft.Engine.Model.Bert;

/// <summary>
/// Sentence embeddings from a <see cref="BertModel"/> on the CPU: texts are tokenized ([CLS] … [SEP], cut to
/// <c>maxTokens</c>), grouped into padded batches (padding masked as attention keys and ignored by pooling),
/// encoded, pooled (mean or CLS) and optionally L2-normalised. Like an inference session's context: the model is
/// shared, an embedder keeps its activation buffers between calls (so repeated calls allocate only their results),
/// and one embedder serves one thread at a time.
/// </summary>
public sealed class BertEmbedder(BertModel model)
{
    private readonly BertEncoder<float> _encoder = new(model.Params);

    public BertModel Model { get; } = model;

    /// <summary>One embedding [hidden] per text, in order.</summary>
    public float[][] Embed(IReadOnlyList<string> texts, BertPooling? pooling = null, bool normalize = false, int maxTokens = 256, int batchSize = 32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var encoded = texts.Select(t => Model.Encode(t, maxTokens)).ToArray();
        var result = EmbedIds(encoded, pooling, batchSize);
        if (normalize)
            foreach (var v in result)
            {
                float norm = TensorPrimitives.Norm<float>(v);
                if (norm > 0) TensorPrimitives.Divide(v, norm, v);
            }
        return result;
    }

    /// <summary>last_hidden_state [tokens, hidden] of one text (no padding), for parity checks against other runtimes.</summary>
    public float[] LastHiddenState(int[] ids) =>
        _encoder.Forward(ids, null, [ids.Length], 1, ids.Length).AsSpan(0, ids.Length * Model.Config.HiddenSize).ToArray();

    /// <summary>
    /// Embeddings of already-tokenized sequences ([CLS] … [SEP] each), in padded batches of up to
    /// <paramref name="batchSize"/> (default: all in one): the host path when the caller tokenizes (and what the latency
    /// benchmark times against ONNX Runtime).
    /// </summary>
    public float[][] EmbedIds(IReadOnlyList<int[]> sequences, BertPooling? pooling = null, int batchSize = int.MaxValue)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var mode = pooling ?? Model.DefaultPooling;
        int h = Model.Config.HiddenSize;
        var result = new float[sequences.Count][];
        for (int start = 0; start < sequences.Count; start += batchSize)
        {
            int b = Math.Min(batchSize, sequences.Count - start);
            var batch = new int[b][];
            for (int i = 0; i < b; i++) batch[i] = sequences[start + i];
            var (ids, valid, t) = PadBatch(batch);
            var hidden = _encoder.Forward(ids, null, valid, b, t);
            var pooled = new float[b * h];
            Pooling.Forward(pooled, hidden, valid, b, t, h, mode);
            for (int i = 0; i < b; i++) result[start + i] = pooled.AsSpan(i * h, h).ToArray();
        }
        return result;
    }

    /// <summary>Right-pads token sequences to the longest with [PAD] (id 0 in BERT vocabularies): ids [B*T], valid lengths [B], T.</summary>
    internal static (int[] Ids, int[] Valid, int T) PadBatch(IReadOnlyList<int[]> seqs, int padId = 0)
    {
        int t = seqs.Max(s => s.Length);
        var ids = new int[seqs.Count * t];
        if (padId != 0) Array.Fill(ids, padId);
        var valid = new int[seqs.Count];
        for (int i = 0; i < seqs.Count; i++)
        {
            seqs[i].CopyTo(ids, i * t);
            valid[i] = seqs[i].Length;
        }
        return (ids, valid, t);
    }

    /// <summary>Cosine similarity of two vectors.</summary>
    public static double Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b) => TensorPrimitives.CosineSimilarity(a, b);
}
