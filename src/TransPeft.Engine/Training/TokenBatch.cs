namespace TransPeft.Engine.Training;

/// <summary>
/// One micro-batch of B sequences of T tokens, row-major [B, T]. Labels follow the Hugging Face
/// convention: same shape as the ids, -100 = not counted, and the shift happens inside the model
/// (the logits at position t predict labels[t + 1]).
/// </summary>
public sealed record TokenBatch(int BatchSize, int SeqLen, int[] InputIds, int[] Labels)
{
    public const int IgnoreIndex = -100;

    /// <summary>Number of counted targets: positions t >= 1 whose label is not -100.</summary>
    public int CountedTargets()
    {
        int n = 0;
        for (int b = 0; b < BatchSize; b++)
            for (int t = 1; t < SeqLen; t++)
                if (Labels[b * SeqLen + t] != IgnoreIndex) n++;
        return n;
    }

    /// <summary>A batch whose every token is also a label (plain language modelling).</summary>
    public static TokenBatch FromIds(int batchSize, int seqLen, int[] ids) => new(batchSize, seqLen, ids, (int[])ids.Clone());
}
