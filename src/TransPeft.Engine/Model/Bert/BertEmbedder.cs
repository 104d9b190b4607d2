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
        var mode = pooling ?? Model.DefaultPooling;
        var encoded = texts.Select(t => Model.Encode(t, maxTokens)).ToArray();
        var result = new float[texts.Count][];
        var encoder = _encoder;
        int h = Model.Config.HiddenSize;
        for (int start = 0; start < encoded.Length; start += batchSize)
        {
            int b = Math.Min(batchSize, encoded.Length - start);
            var batch = encoded.AsSpan(start, b).ToArray();
            var (ids, valid, t) = PadBatch(batch);
            var hidden = encoder.Forward(ids, null, valid, b, t);
            var pooled = new float[b * h];
            Pooling.Forward(pooled, hidden, valid, b, t, h, mode);
            for (int i = 0; i < b; i++)
            {
                var v = pooled.AsSpan(i * h, h).ToArray();
                if (normalize)
                {
                    float norm = TensorPrimitives.Norm<float>(v);
                    if (norm > 0) TensorPrimitives.Divide(v, norm, v);
                }
                result[start + i] = v;
            }
        }
        return result;
    }

    /// <summary>last_hidden_state [tokens, hidden] of one text (no padding), for parity checks against other runtimes.</summary>
    public float[] LastHiddenState(int[] ids) =>
        _encoder.Forward(ids, null, [ids.Length], 1, ids.Length).AsSpan(0, ids.Length * Model.Config.HiddenSize).ToArray();

    /// <summary>
    /// Embeddings of already-tokenized sequences ([CLS] … [SEP] each), encoded as one padded batch: the host path
    /// when the caller tokenizes (and what the latency benchmark times against ONNX Runtime).
    /// </summary>
    public float[][] EmbedIds(IReadOnlyList<int[]> sequences, BertPooling? pooling = null)
    {
        var (ids, valid, t) = PadBatch(sequences);
        int b = sequences.Count, h = Model.Config.HiddenSize;
        var hidden = _encoder.Forward(ids, null, valid, b, t);
        var pooled = new float[b * h];
        Pooling.Forward(pooled, hidden, valid, b, t, h, pooling ?? Model.DefaultPooling);
        return Enumerable.Range(0, b).Select(i => pooled.AsSpan(i * h, h).ToArray()).ToArray();
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
