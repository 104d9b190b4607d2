using System.Text.RegularExpressions;
using TransPeft.Experiments.Data.Readers;
using TransPeft.Experiments.Data.Text;

namespace TransPeft.Experiments.Data.Corpora;

/// <summary>Turns what the readers return into corpus documents.</summary>
public static partial class CorpusDocuments
{
    /// <summary>Long texts are cut into pieces of about this many characters, so budgets and held-out splits are fine-grained.</summary>
    public const int PieceChars = 4000;

    public static IReadOnlyList<CorpusDocument> FromMobyDick(IEnumerable<MobyDickChapter> chapters) =>
        chapters.SelectMany(c => TextChunker.ChunkParagraphs(c.Heading + "\n\n" + c.Text, PieceChars)
            .Select((piece, i) => new CorpusDocument($"moby-dick/{c.Name}/{i}", CorpusPart.MobyDick, piece))).ToList();

    public static IReadOnlyList<CorpusDocument> FromFortunes(IEnumerable<Fortune> fortunes) =>
        fortunes.Select(f => new CorpusDocument($"fortunes/{f.Category}/{f.Index}", CorpusPart.Fortunes, f.Text)).ToList();

    public static IReadOnlyList<CorpusDocument> FromSotu(IEnumerable<SotuSpeech> speeches) =>
        speeches.SelectMany(s => TextChunker.ChunkSentences(SentenceSplitter.Split(s.Text), PieceChars)
            .Select((piece, i) => new CorpusDocument($"sotu/{s.Key}/{i}", CorpusPart.Sotu, piece))).ToList();

    /// <summary>Jargon entries; entries whose headword (lower case) is in <paramref name="requiredHeadwords"/> are required.</summary>
    public static IReadOnlyList<CorpusDocument> FromJargon(IEnumerable<JargonEntry> entries, IReadOnlySet<string> requiredHeadwords)
    {
        var result = new List<CorpusDocument>();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            // A few headwords occur twice (different capitalisation or senses); keys stay unique by counting.
            var baseKey = "jargon/" + e.Headword;
            int n = seen.TryGetValue(baseKey, out var c) ? c : 0;
            seen[baseKey] = n + 1;
            bool required = requiredHeadwords.Contains(e.Headword.ToLowerInvariant());
            var pieces = TextChunker.ChunkParagraphs(e.ToText(), PieceChars);
            for (int i = 0; i < pieces.Count; i++)
                result.Add(new CorpusDocument($"{baseKey}#{n}/{i}", CorpusPart.Jargon, pieces[i], required));
        }
        return result;
    }

    /// <summary>The dictionary line of a definition: <c>cookie (noun): any of various small flat sweet cakes ...</c></summary>
    public static string DictionaryLine(WordNetDefinition d) => $"{d.Word} ({d.PartOfSpeech}): {d.Definition}";

    /// <summary>WordNet dictionary lines; definitions of words in <paramref name="requiredWords"/> (lower case) are required.</summary>
    public static IReadOnlyList<CorpusDocument> FromDictionary(IEnumerable<WordNetDefinition> definitions, IReadOnlySet<string> requiredWords) =>
        definitions.Select(d => new CorpusDocument("wordnet/" + d.Word, CorpusPart.WordNetDictionary, DictionaryLine(d),
            requiredWords.Contains(d.Word.ToLowerInvariant()))).ToList();

    [GeneratedRegex(@"[a-z]+")]
    private static partial Regex LowerWord();

    /// <summary>How often each lower-case alphabetic word occurs in the texts.</summary>
    public static Dictionary<string, int> WordFrequencies(IEnumerable<string> texts)
    {
        var freq = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in texts)
            foreach (Match m in LowerWord().Matches(t.ToLowerInvariant()))
                freq[m.Value] = freq.GetValueOrDefault(m.Value) + 1;
        return freq;
    }
}
