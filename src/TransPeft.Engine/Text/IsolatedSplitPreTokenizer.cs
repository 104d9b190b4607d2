using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Text;

/// <summary>
/// Hugging Face's <c>Split</c> pre-tokenizer with <c>"behavior": "Isolated"</c>, for a regex taken from an untrusted
/// tokenizer.json. Added (special) tokens are cut out first, as a Hugging Face tokenizer matches them before
/// pre-tokenizing; then, in each stretch between them, every regex match is a piece AND so is every stretch of text
/// between matches. Microsoft.ML.Tokenizers' RegexPreTokenizer differs in the three ways that matter here:
/// <list type="bullet">
/// <item>text no match covers is dropped there (so "decode(encode(x)) = x" fails); here it is kept, as in HF;</item>
/// <item>an empty match (a pattern like "(?=x)") loops there; here it is skipped, as HF skips it;</item>
/// <item>matching has no time limit there; here each match gets <see cref="MatchTimeout"/>, after which a
///   catastrophically backtracking pattern is reported as a <see cref="TokenizerFormatException"/> naming the file.</item>
/// </list>
/// </summary>
internal sealed class IsolatedSplitPreTokenizer : PreTokenizer
{
    /// <summary>Generous for any sane pattern on any text (GPT-2's regex takes microseconds per piece).</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    private readonly Regex _regex;
    private readonly Regex? _special;
    private readonly string _source;

    /// <param name="source">The tokenizer file, for the error a runaway pattern produces.</param>
    public IsolatedSplitPreTokenizer(string pattern, IReadOnlyDictionary<string, int>? specialTokens, string source)
    {
        _source = source;
        _regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, MatchTimeout);
        if (specialTokens is { Count: > 0 })
            _special = new Regex(string.Join("|", specialTokens.Keys.OrderByDescending(k => k.Length).ThenBy(k => k, StringComparer.Ordinal).Select(Regex.Escape)),
                RegexOptions.CultureInvariant, MatchTimeout);
    }

    public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) => PreTokenize(text.ToString());

    public override IEnumerable<(int Offset, int Length)> PreTokenize(string text)
    {
        // Eager: the timeout must surface here, as our error, not later inside the library's enumeration.
        var pieces = new List<(int, int)>();
        try
        {
            int pos = 0;
            if (_special is not null)
                for (var m = _special.Match(text); m.Success; m = m.NextMatch())
                {
                    if (m.Length == 0) continue;
                    Split(text, pos, m.Index, pieces);
                    pieces.Add((m.Index, m.Length));
                    pos = m.Index + m.Length;
                }
            Split(text, pos, text.Length, pieces);
        }
        catch (RegexMatchTimeoutException)
        {
            throw new TokenizerFormatException(_source, "pre_tokenizer.pattern",
                $"a Split regex that runs in bounded time; it took over {MatchTimeout.TotalSeconds:0} s on one stretch of text (catastrophic backtracking)");
        }
        return pieces;
    }

    /// <summary>Pieces of text[start..end): each non-empty match, and each gap between matches.</summary>
    private void Split(string text, int start, int end, List<(int, int)> pieces)
    {
        int pos = start;
        for (var m = _regex.Match(text, start, end - start); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue; // NextMatch steps past an empty match, so this cannot loop
            if (m.Index > pos) pieces.Add((pos, m.Index - pos));
            pieces.Add((m.Index, m.Length));
            pos = m.Index + m.Length;
        }
        if (end > pos) pieces.Add((pos, end - pos));
    }
}
