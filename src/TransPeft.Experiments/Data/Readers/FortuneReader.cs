using System.Text;
using System.Text.RegularExpressions;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>
/// Reads fortune-mod files (Debian <c>fortunes</c> and <c>fortunes-min</c>, folder <c>usr/share/games/fortunes/</c>):
/// each category file holds entries separated by lines consisting of a single <c>%</c>; <c>.dat</c> files are
/// strfile indexes and <c>.u8</c> names are links to the same text, both skipped. Some entries use
/// typewriter overstrike (<c>_\bX</c> underlines X, <c>____\b\b\b\bWORD</c> too); a backspace erases the
/// character before it, which leaves the plain text.
/// </summary>
public static partial class FortuneReader
{
    public const string FortuneFolder = "usr/share/games/fortunes";

    // The attribution closes an entry: an indented line starting with "-- ", possibly continued on indented lines.
    [GeneratedRegex(@"^\s+--\s*(\S.*)$")]
    private static partial Regex AttributionLine();

    /// <summary>Reads every category file of every given unpacked package root (or fortune folder).</summary>
    public static IReadOnlyList<Fortune> Read(params string[] roots)
    {
        var all = new List<Fortune>();
        foreach (var root in roots)
        {
            var dir = Directory.Exists(Path.Combine(root, FortuneFolder)) ? Path.Combine(root, FortuneFolder) : root;
            var files = Directory.GetFiles(dir).Where(IsCategoryFile).OrderBy(p => p, StringComparer.Ordinal).ToList();
            if (files.Count == 0) throw new DataFormatException(dir, "contains no fortune category files (expected %-separated text files beside their .dat indexes)");
            foreach (var f in files) all.AddRange(ParseFile(f));
        }
        return all;
    }

    private static bool IsCategoryFile(string path)
    {
        var ext = Path.GetExtension(path);
        if (ext is ".dat" or ".u8") return false;
        return new FileInfo(path).LinkTarget is null;
    }

    /// <summary>Parses one category file.</summary>
    public static IReadOnlyList<Fortune> ParseFile(string path)
    {
        var category = Path.GetFileName(path);
        return Parse(TextFiles.ReadAllText(path), category);
    }

    /// <summary>Parses the text of one category file.</summary>
    public static IReadOnlyList<Fortune> Parse(string text, string category)
    {
        var result = new List<Fortune>();
        var current = new List<string>();
        void Flush()
        {
            while (current.Count > 0 && current[^1].Length == 0) current.RemoveAt(current.Count - 1);
            while (current.Count > 0 && current[0].Length == 0) current.RemoveAt(0);
            if (current.Count > 0) result.Add(MakeFortune(category, result.Count, current));
            current.Clear();
        }
        foreach (var raw in TextFiles.NormalizeNewlines(text).Split('\n'))
        {
            if (raw == "%") { Flush(); continue; }
            current.Add(ResolveOverstrike(raw).TrimEnd());
        }
        Flush();
        return result;
    }

    private static Fortune MakeFortune(string category, int index, List<string> lines)
    {
        var text = string.Join('\n', lines);
        // Look for the attribution among the last three lines; it and any lines after it form the attribution.
        for (int i = lines.Count - 1; i >= Math.Max(1, lines.Count - 3); i--)
        {
            var m = AttributionLine().Match(lines[i]);
            if (!m.Success) continue;
            bool tailIndented = lines.Skip(i + 1).All(l => l.Length > 0 && char.IsWhiteSpace(l[0]));
            if (!tailIndented) break;
            var attribution = string.Join(' ', new[] { m.Groups[1].Value }.Concat(lines.Skip(i + 1).Select(l => l.Trim())));
            var quote = string.Join('\n', lines.Take(i)).TrimEnd();
            return new Fortune(category, index, text, quote, attribution.Trim());
        }
        return new Fortune(category, index, text, text, null);
    }

    /// <summary>Applies backspaces the way a terminal would overprint: each one erases the character before it.</summary>
    public static string ResolveOverstrike(string line)
    {
        if (!line.Contains('\b')) return line;
        var sb = new StringBuilder(line.Length);
        foreach (var c in line)
        {
            if (c == '\b') { if (sb.Length > 0) sb.Length--; }
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
