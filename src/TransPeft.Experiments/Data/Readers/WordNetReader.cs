using System.Globalization;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>
/// Reads the WordNet 3.0 database of the Debian <c>wordnet-base</c> package (<c>usr/share/wordnet/</c>).
/// <c>data.POS</c> lines are
/// <code>offset lex_filenum ss_type w_cnt(2 hex digits) word lex_id(1 hex) [word lex_id ...] p_cnt pointers... [frames...] | gloss</code>
/// and <c>index.POS</c> lines are
/// <code>lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...</code>
/// where the offsets come in order of sense frequency. Both files open with the license, whose lines
/// start with two spaces and are skipped.
/// </summary>
public static class WordNetReader
{
    public const string WordNetFolder = "usr/share/wordnet";
    private static readonly string[] PosFiles = ["noun", "verb", "adj", "adv"];

    public static string PartOfSpeechName(char pos) => pos switch
    {
        'n' => "noun", 'v' => "verb", 'a' or 's' => "adjective", 'r' => "adverb",
        _ => throw new ArgumentOutOfRangeException(nameof(pos), $"'{pos}' is not a WordNet part of speech (n, v, a, s, r)"),
    };

    private static string Folder(string root) => Directory.Exists(Path.Combine(root, WordNetFolder)) ? Path.Combine(root, WordNetFolder) : root;

    /// <summary>Reads every synset of data.noun, data.verb, data.adj and data.adv.</summary>
    public static IReadOnlyList<WordNetSynset> ReadAllSynsets(string root)
    {
        var dir = Folder(root);
        var all = new List<WordNetSynset>();
        foreach (var p in PosFiles) all.AddRange(ReadDataFile(Path.Combine(dir, "data." + p)));
        return all;
    }

    /// <summary>All (word, gloss) pairs: every word of every synset with that synset's definition.</summary>
    public static IEnumerable<(string Word, string Gloss)> WordGlossPairs(IEnumerable<WordNetSynset> synsets) =>
        synsets.SelectMany(s => s.Words.Select(w => (w, s.Definition)));

    /// <summary>Parses a data.POS file.</summary>
    public static IReadOnlyList<WordNetSynset> ReadDataFile(string path)
    {
        if (!File.Exists(path)) throw new DataFormatException(path, "missing: expected a WordNet data file");
        var result = new List<WordNetSynset>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path, System.Text.Encoding.Latin1))
        {
            lineNo++;
            if (line.StartsWith("  ", StringComparison.Ordinal) || line.Length == 0) continue;
            result.Add(ParseDataLine(line, path, lineNo));
        }
        return result;
    }

    /// <summary>Parses one synset line of a data.POS file.</summary>
    public static WordNetSynset ParseDataLine(string line, string file, int lineNo)
    {
        int bar = line.IndexOf(" | ", StringComparison.Ordinal);
        var gloss = bar >= 0 ? line[(bar + 3)..].Trim() : "";
        var f = (bar >= 0 ? line[..bar] : line).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length < 6) throw new DataFormatException(file, "expected 'offset lex_filenum ss_type w_cnt word lex_id ... | gloss'", lineNo);
        if (!long.TryParse(f[0], NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
            throw new DataFormatException(file, $"synset_offset: expected 8 decimal digits, found '{f[0]}'", lineNo);
        if (f[2].Length != 1 || "nvasr".IndexOf(f[2][0]) < 0)
            throw new DataFormatException(file, $"ss_type: expected one of n v a s r, found '{f[2]}'", lineNo);
        if (!int.TryParse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var wCnt) || wCnt < 1)
            throw new DataFormatException(file, $"w_cnt: expected a 2-digit hexadecimal word count, found '{f[3]}'", lineNo);
        if (f.Length < 4 + 2 * wCnt) throw new DataFormatException(file, $"w_cnt is {wCnt} but the line has fewer word/lex_id pairs", lineNo);
        var words = new string[wCnt];
        for (int i = 0; i < wCnt; i++) words[i] = CleanWord(f[4 + 2 * i]);
        var (definition, examples) = SplitGloss(gloss);
        return new WordNetSynset(offset, f[2][0], words, gloss, definition, examples);
    }

    /// <summary>Lemma form: adjective position markers "(a)", "(p)", "(ip)" removed, underscores to spaces.</summary>
    public static string CleanWord(string raw)
    {
        int paren = raw.IndexOf('(');
        if (paren > 0 && raw.EndsWith(')')) raw = raw[..paren];
        return raw.Replace('_', ' ');
    }

    /// <summary>Splits a gloss into its definition (the part before the first quoted example) and the examples.</summary>
    public static (string Definition, IReadOnlyList<string> Examples) SplitGloss(string gloss)
    {
        int q = gloss.IndexOf('"');
        var definition = (q >= 0 ? gloss[..q] : gloss).Trim().TrimEnd(';').Trim();
        var examples = new List<string>();
        while (q >= 0)
        {
            int end = gloss.IndexOf('"', q + 1);
            if (end < 0) break;
            examples.Add(gloss[(q + 1)..end]);
            q = gloss.IndexOf('"', end + 1);
        }
        return (definition, examples);
    }

    /// <summary>
    /// The definition of each word's most frequent sense: for each lemma in index.noun, then index.verb,
    /// index.adj, index.adv (the first part of speech that has it wins), the first listed synset.
    /// </summary>
    public static IReadOnlyList<WordNetDefinition> ReadPrimaryDefinitions(string root)
    {
        var dir = Folder(root);
        var result = new Dictionary<string, WordNetDefinition>(StringComparer.Ordinal);
        foreach (var p in PosFiles)
        {
            var synsets = ReadDataFile(Path.Combine(dir, "data." + p)).ToDictionary(s => s.Offset);
            var indexPath = Path.Combine(dir, "index." + p);
            foreach (var (lemma, offsets) in ReadIndexFile(indexPath))
            {
                if (result.ContainsKey(lemma)) continue;
                if (!synsets.TryGetValue(offsets[0], out var s))
                    throw new DataFormatException(indexPath, $"lemma '{lemma}' points at synset {offsets[0]:D8}, which data.{p} does not have");
                if (s.Definition.Length == 0) continue;
                // The index is lower case; the synset keeps the word's own spelling (Finland, AIDS).
                var word = s.Words.FirstOrDefault(w => string.Equals(w, lemma, StringComparison.OrdinalIgnoreCase)) ?? lemma;
                result[lemma] = new WordNetDefinition(word, s.PartOfSpeechName, s.Definition, offsets.Count);
            }
        }
        return result.Values.OrderBy(d => d.Word, StringComparer.Ordinal).ToList();
    }

    /// <summary>Parses an index.POS file: each lemma (spaces, lower case) with its synset offsets in sense-frequency order.</summary>
    public static IEnumerable<(string Lemma, IReadOnlyList<long> Offsets)> ReadIndexFile(string path)
    {
        if (!File.Exists(path)) throw new DataFormatException(path, "missing: expected a WordNet index file");
        int lineNo = 0;
        foreach (var line in File.ReadLines(path, System.Text.Encoding.Latin1))
        {
            lineNo++;
            if (line.StartsWith("  ", StringComparison.Ordinal) || line.Length == 0) continue;
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 6 || !int.TryParse(f[2], NumberStyles.None, CultureInfo.InvariantCulture, out var synsetCnt)
                || !int.TryParse(f[3], NumberStyles.None, CultureInfo.InvariantCulture, out var pCnt) || f.Length != 4 + pCnt + 2 + synsetCnt)
                throw new DataFormatException(path, "expected 'lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt synset_offset...'", lineNo);
            var offsets = new long[synsetCnt];
            for (int i = 0; i < synsetCnt; i++)
            {
                if (!long.TryParse(f[f.Length - synsetCnt + i], NumberStyles.None, CultureInfo.InvariantCulture, out offsets[i]))
                    throw new DataFormatException(path, $"synset_offset: expected decimal digits, found '{f[f.Length - synsetCnt + i]}'", lineNo);
            }
            yield return (f[0].Replace('_', ' '), offsets);
        }
    }
}
