namespace TransPeft.Experiments.Data.Corpora;

/// <summary>
/// What a corpus is made of and how big it is. Budgets are in characters (independent of the tokenizer,
/// which is trained on the result); each part gets its share of both budgets, and a part that has less
/// text than its share simply contributes all it has.
/// </summary>
/// <param name="Name">File name stem, e.g. <c>corpus-a</c>.</param>
/// <param name="Parts">Parts and shares (normalised to sum to 1).</param>
/// <param name="TrainChars">Training budget; null = all the text not held out.</param>
/// <param name="HeldOutChars">Held-out budget (text never trained on, for measuring loss).</param>
public sealed record CorpusSpec(string Name, IReadOnlyList<CorpusPartShare> Parts, long? TrainChars, long HeldOutChars)
{
    public double ShareOf(CorpusPart part)
    {
        double total = Parts.Sum(p => p.Share);
        return Parts.Where(p => p.Part == part).Sum(p => p.Share) / total;
    }

    public bool Contains(CorpusPart part) => Parts.Any(p => p.Part == part && p.Share > 0);
}
