using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>
/// Reads the Debian <c>jargon-text</c> package: <c>usr/share/doc/jargon-text/jargon.txt.gz</c>, a text
/// rendering of the Jargon File 4.4.7 indented by three spaces. Lexicon entries start with a line
/// <c>   :headword: annotation</c>; an entry runs until the next entry, a letter heading of the glossary
/// index (<c>  H</c>, two spaces and one capital) or the start of the appendices.
/// </summary>
public static partial class JargonReader
{
    public const string JargonPath = "usr/share/doc/jargon-text/jargon.txt.gz";

    [GeneratedRegex(@"^   :([^:\s][^:]*):\s*(.*)$")]
    private static partial Regex EntryLine();

    [GeneratedRegex(@"^  [A-Z]$")]
    private static partial Regex LetterHeading();

    [GeneratedRegex(@"^\s+Part [IVX]+\. ")]
    private static partial Regex PartHeading();

    /// <param name="root">The unpacked package root, or the .gz / .txt file itself.</param>
    public static JargonFile Read(string root)
    {
        var path = File.Exists(root) ? root : Path.Combine(root, JargonPath);
        if (!File.Exists(path)) throw new DataFormatException(path, "missing: the jargon-text package keeps the Jargon File in " + JargonPath);
        string text;
        try
        {
            if (path.EndsWith(".gz", StringComparison.Ordinal))
            {
                using var fs = File.OpenRead(path);
                using var gz = new GZipStream(fs, CompressionMode.Decompress);
                using var ms = new MemoryStream();
                gz.CopyTo(ms);
                text = TextFiles.NormalizeNewlines(TextFiles.Decode(ms.ToArray()));
            }
            else text = TextFiles.ReadAllText(path);
        }
        catch (InvalidDataException e) { throw new DataFormatException(path, $"not a valid gzip file: {e.Message}"); }
        var entries = ParseEntries(text);
        if (entries.Count == 0) throw new DataFormatException(path, "no lexicon entries found (expected lines of the form '   :headword: ...')");
        return new JargonFile(text, entries);
    }

    /// <summary>Parses the lexicon entries out of the Jargon File text.</summary>
    public static IReadOnlyList<JargonEntry> ParseEntries(string text)
    {
        var entries = new List<JargonEntry>();
        string? head = null, annotation = null;
        var body = new List<string>();
        void Flush()
        {
            if (head is null) return;
            entries.Add(new JargonEntry(head, annotation!, JoinBody(body)));
            head = null;
            body.Clear();
        }
        foreach (var line in TextFiles.NormalizeNewlines(text).Split('\n'))
        {
            var m = EntryLine().Match(line);
            if (m.Success)
            {
                Flush();
                head = m.Groups[1].Value.Trim();
                annotation = m.Groups[2].Value.Trim();
                continue;
            }
            if (LetterHeading().IsMatch(line) || PartHeading().IsMatch(line)) { Flush(); continue; }
            if (head is not null) body.Add(line.StartsWith("   ", StringComparison.Ordinal) ? line[3..] : line.TrimStart());
        }
        Flush();
        return entries;
    }

    private static string JoinBody(List<string> lines)
    {
        var sb = new StringBuilder();
        foreach (var l in lines) sb.Append(l.TrimEnd()).Append('\n');
        // Cross-references are written {like this}; the braces are markup, not words.
        return sb.ToString().Replace("{", "").Replace("}", "").Trim();
    }
}
