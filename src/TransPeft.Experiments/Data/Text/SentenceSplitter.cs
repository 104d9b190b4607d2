using System.Text.RegularExpressions;

namespace TransPeft.Experiments.Data.Text;

/// <summary>
/// A heuristic English sentence splitter: a sentence ends at '.', '!' or '?' (plus closing quotes or
/// brackets) followed by white space and a capital letter, digit or opening quote. Common abbreviations
/// (Mr., Dr., U.S., ...) do not end a sentence. Good enough to cut speeches and novels into readable
/// pieces; not a linguistic tool.
/// </summary>
public static partial class SentenceSplitter
{
    [GeneratedRegex(@"(?<=[.!?][""'”’)\]]*)\s+(?=[""'“‘(\[]*[A-Z0-9])")]
    private static partial Regex Boundary();

    private static readonly HashSet<string> Abbreviations = new(StringComparer.Ordinal)
    {
        "Mr.", "Mrs.", "Ms.", "Dr.", "St.", "Jr.", "Sr.", "Gen.", "Col.", "Capt.", "Lt.", "Gov.", "Sen.", "Rep.", "Hon.",
        "U.S.", "U.S.A.", "U.N.", "No.", "Nos.", "vs.", "etc.", "i.e.", "e.g.", "Co.", "Inc.", "Mt.", "Messrs.", "Prof.",
    };

    /// <summary>The sentences of <paramref name="text"/>, trimmed, in order; joining them with spaces gives back the words.</summary>
    public static IReadOnlyList<string> Split(string text)
    {
        var pieces = Boundary().Split(text.Trim());
        var result = new List<string>(pieces.Length);
        string? pending = null;
        foreach (var raw in pieces)
        {
            var s = raw.Trim();
            if (s.Length == 0) continue;
            pending = pending is null ? s : pending + " " + s;
            if (EndsWithAbbreviation(pending)) continue;
            result.Add(pending);
            pending = null;
        }
        if (pending is not null) result.Add(pending);
        return result;
    }

    private static bool EndsWithAbbreviation(string s)
    {
        int sp = s.LastIndexOf(' ');
        var last = sp < 0 ? s : s[(sp + 1)..];
        return Abbreviations.Contains(last) || (last.Length == 2 && char.IsUpper(last[0]) && last[1] == '.'); // initials: "John F. Kennedy"
    }
}
