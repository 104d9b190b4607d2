using TransPeft.Experiments.Data.Text;

namespace TransPeft.Experiments.Data.Corpora;

/// <summary>
/// Builds a corpus from documents by part, deterministically from a seed. Per part, documents are put in
/// seeded hash order; the held-out split takes non-required documents from the front of that order until
/// the part's held-out budget is reached; the training split then takes the required documents, then the
/// remaining ones in order, until the part's training budget is reached (the last document may overshoot
/// it by less than one document). Both splits are finally interleaved across parts in hash order.
/// </summary>
public static class CorpusBuilder
{
    public static CorpusSplit Build(CorpusSpec spec, IReadOnlyDictionary<CorpusPart, IReadOnlyList<CorpusDocument>> documents, ulong seed)
    {
        var train = new List<CorpusDocument>();
        var heldOut = new List<CorpusDocument>();
        foreach (var share in spec.Parts.Where(p => p.Share > 0))
        {
            if (!documents.TryGetValue(share.Part, out var docs) || docs.Count == 0)
                throw new ArgumentException($"{spec.Name}: part {share.Part} has a share but no documents");
            var dup = docs.GroupBy(d => d.Key).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null) throw new ArgumentException($"{spec.Name}: document key '{dup.Key}' is not unique");
            double s = spec.ShareOf(share.Part);
            long heldBudget = (long)(spec.HeldOutChars * s);
            long trainBudget = spec.TrainChars is { } t ? (long)(t * s) : long.MaxValue;

            var ordered = StableHash.Shuffle(docs, d => d.Key, seed, spec.Name + ":" + share.Part);
            var optional = new Queue<CorpusDocument>(ordered.Where(d => !d.Required));
            long held = 0;
            while (held < heldBudget && optional.Count > 0)
            {
                var d = optional.Dequeue();
                heldOut.Add(d);
                held += d.Text.Length;
            }
            long used = 0;
            foreach (var d in ordered.Where(d => d.Required).Concat(optional))
            {
                if (used >= trainBudget) break;
                train.Add(d);
                used += d.Text.Length;
            }
        }
        return new CorpusSplit(spec.Name,
            StableHash.Shuffle(train, d => d.Key, seed, spec.Name + ":train-order"),
            StableHash.Shuffle(heldOut, d => d.Key, seed, spec.Name + ":heldout-order"));
    }
}
