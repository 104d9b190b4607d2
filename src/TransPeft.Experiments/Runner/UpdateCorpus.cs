using TransPeft.Experiments.Data.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments;

/// <summary>
/// The update's training text: corpus B plus a replay of corpus A, so that v2 learns the new text without
/// forgetting what v1 knew (docs/EXPERIMENT-DATA.md §6: without replay every define row gets worse for a reason
/// Trans-PEFT does not address). Documents are the corpus files' "&lt;|endoftext|&gt;"-terminated pieces; the
/// replayed ones are a seeded sample of A's, and all documents are interleaved in a seeded order (the trainer
/// packs the text into sequences and shuffles those).
/// </summary>
internal static class UpdateCorpus
{
    public const string DocumentEnd = "<|endoftext|>";

    /// <summary>Writes the mixed text; returns (B chars, replayed A chars).</summary>
    public static (long BChars, long AChars) Write(string corpusBPath, string corpusAPath, double replayFraction, ulong seed, string outPath)
    {
        var b = Documents(File.ReadAllText(corpusBPath));
        long bChars = b.Sum(d => (long)d.Length);
        var mixed = b.Select((d, i) => (Key: $"b{i}", Text: d)).ToList();
        long aChars = 0;
        if (replayFraction > 0)
        {
            long want = (long)Math.Round(bChars * replayFraction / (1 - replayFraction));
            var a = Documents(File.ReadAllText(corpusAPath)).Select((d, i) => (Key: $"a{i}", Text: d));
            foreach (var doc in StableHash.Shuffle(a, d => d.Key, seed, "replay"))
            {
                if (aChars >= want) break;
                mixed.Add(doc);
                aChars += doc.Text.Length;
            }
        }
        AtomicFile.WriteAllText(outPath, string.Concat(StableHash.Shuffle(mixed, d => d.Key, seed, "update-order").Select(d => d.Text)));
        return (bChars, aChars);
    }

    /// <summary>Splits a corpus file into its documents, each ending with its terminator (text after the last one is a document too).</summary>
    internal static List<string> Documents(string text)
    {
        var docs = new List<string>();
        int pos = 0;
        while (pos < text.Length)
        {
            int end = text.IndexOf(DocumentEnd, pos, StringComparison.Ordinal);
            int stop = end < 0 ? text.Length : end + DocumentEnd.Length;
            if (text.AsSpan(pos, stop - pos).Trim().Length > 0) docs.Add(text[pos..stop]);
            pos = stop;
        }
        return docs;
    }
}
