using TransPeft.Engine.Training;

namespace TransPeft.Engine.Text;

/// <summary>
/// Builds a micro-batch [B, T] from examples: right padding to the longest example of the micro-batch
/// (or to a fixed seqLen), pad ids = the dataset's pad id, pad labels = -100. Right padding keeps a
/// causal model's outputs at real positions independent of the padding.
/// </summary>
internal static class BatchBuilder
{
    public static TokenBatch Build(TokenizedDataset ds, ReadOnlySpan<int> examples, int seqLen, bool padToSeqLen)
    {
        int b = examples.Length;
        if (b == 0) throw new ArgumentException("a micro-batch needs at least one example", nameof(examples));
        int t = 0;
        foreach (var e in examples) t = Math.Max(t, ds.LengthOf(e));
        if (t > seqLen) throw new InvalidOperationException($"{ds.Name}: an example of {t} tokens exceeds seq_len = {seqLen} (the dataset was built for a longer sequence length)");
        if (padToSeqLen) t = seqLen;
        var ids = new int[b * t];
        var labels = new int[b * t];
        Array.Fill(ids, ds.PadId);
        Array.Fill(labels, TokenBatch.IgnoreIndex);
        for (int r = 0; r < b; r++)
        {
            ds.IdsOf(examples[r]).CopyTo(ids.AsSpan(r * t));
            ds.LabelsOf(examples[r]).CopyTo(labels.AsSpan(r * t));
        }
        return new TokenBatch(b, t, ids, labels);
    }
}
