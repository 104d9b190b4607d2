using System.Globalization;
using System.Text.RegularExpressions;

namespace TransPeft.Engine.Evaluation;

/// <summary>
/// Pulls the answer out of a generated (or gold) text before exact matching. With a regex, the answer is the
/// first match's group named "answer", else its group 1, else the whole match; without one, the text before
/// the first line break, trimmed. Answers are compared trimmed; with numeric equality, two answers that both
/// read as numbers (thousands separators, a leading $ and a trailing period allowed) match by value.
/// </summary>
public sealed class AnswerExtractor
{
    /// <summary>GSM8K-style: the number after "The answer is:" (as in MetaMath-style training data).</summary>
    public const string GsmAnswerPattern = @"The answer is:?\s*\$?(?<answer>-?[0-9][0-9,]*(?:\.[0-9]+)?)";

    private readonly Regex? _regex;

    /// <summary>The regex, or null for first-line extraction.</summary>
    public string? Pattern { get; }

    public AnswerExtractor(string? pattern = null)
    {
        Pattern = pattern;
        if (pattern is null) return;
        try { _regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
        catch (ArgumentException e) { throw new ArgumentException($"answer pattern '{pattern}' is not a valid regex: {e.Message}", nameof(pattern)); }
    }

    public string Describe() => Pattern is null ? "first line, trimmed" : $"regex /{Pattern}/";

    /// <summary>The answer, or null when the regex does not match.</summary>
    public string? Extract(string text)
    {
        if (_regex is null)
        {
            int nl = text.IndexOfAny(['\n', '\r']);
            return (nl < 0 ? text : text[..nl]).Trim();
        }
        var m = _regex.Match(text);
        if (!m.Success) return null;
        var g = m.Groups["answer"];
        if (!g.Success && m.Groups.Count > 1) g = m.Groups[1];
        return (g.Success ? g.Value : m.Value).Trim();
    }

    /// <summary>Exact match of two extracted answers (see the class summary for numbers).</summary>
    public static bool AnswersEqual(string? predicted, string? gold, bool numericEquality = true)
    {
        if (predicted is null || gold is null) return false;
        predicted = predicted.Trim(); gold = gold.Trim();
        if (string.Equals(predicted, gold, StringComparison.Ordinal)) return true;
        return numericEquality && TryNumber(predicted, out var a) && TryNumber(gold, out var b) && a == b;
    }

    private static bool TryNumber(string s, out decimal value)
    {
        s = s.Replace(",", "", StringComparison.Ordinal).TrimStart('$').TrimEnd('.');
        return decimal.TryParse(s, NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out value);
    }
}
