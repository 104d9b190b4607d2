using System.Text;
using TransPeft.Engine.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Experiments.Data.Corpora;

/// <summary>A built corpus: its training and held-out documents (disjoint), in seeded hash order with parts interleaved.</summary>
public sealed record CorpusSplit(string Name, IReadOnlyList<CorpusDocument> Train, IReadOnlyList<CorpusDocument> HeldOut)
{
    /// <summary>Written between documents in the text files: GPT-2's end-of-text token, id 0 of the compact tokenizer.</summary>
    public const string DocumentSeparator = CompactGpt2Tokenizer.EosToken;

    public long TrainChars => Train.Sum(d => (long)d.Text.Length);
    public long HeldOutChars => HeldOut.Sum(d => (long)d.Text.Length);

    /// <summary>
    /// The plain-text form: each document, then a newline, then &lt;|endoftext|&gt;. Encoding this file with the
    /// compact tokenizer gives the training stream with EOS (id 0) between documents.
    /// </summary>
    public static string ToText(IEnumerable<CorpusDocument> documents)
    {
        var sb = new StringBuilder();
        foreach (var d in documents) sb.Append(d.Text.TrimEnd()).Append('\n').Append(DocumentSeparator);
        return sb.ToString();
    }

    /// <summary>Splits a corpus text file back into its documents.</summary>
    public static IReadOnlyList<string> SplitDocuments(string text) =>
        text.Split(DocumentSeparator, StringSplitOptions.RemoveEmptyEntries).Select(d => d.TrimEnd('\n')).Where(d => d.Length > 0).ToList();

    /// <summary>Writes NAME.train.txt and NAME.heldout.txt into <paramref name="directory"/>; returns their paths.</summary>
    public (string TrainPath, string HeldOutPath) Write(string directory)
    {
        var train = Path.Combine(directory, Name + ".train.txt");
        var held = Path.Combine(directory, Name + ".heldout.txt");
        AtomicFile.WriteAllText(train, ToText(Train));
        AtomicFile.WriteAllText(held, ToText(HeldOut));
        return (train, held);
    }
}
