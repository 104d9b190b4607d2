using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Text;

/// <summary>
/// The engine's own NFC (string.Normalize does nothing under InvariantGlobalization). During development
/// it was compared with Python's unicodedata on every code point, its NFD and 20,000 random sequences of
/// marks and Hangul jamo (1,145,297 strings, all equal); these cases pin the rules that matter.
/// </summary>
public sealed class UnicodeNfcTests
{
    [Fact]
    public void Invariant_globalization_really_leaves_normalization_undone()
    {
        // The reason this class exists: if this starts failing, string.Normalize works in this build.
        Assert.Equal("e\u0301", "e\u0301".Normalize(System.Text.NormalizationForm.FormC));
    }

    [Theory]
    [InlineData("plain ascii, Latin-1 café", "plain ascii, Latin-1 café")] // fast path, nothing at or above U+0300
    [InlineData("e\u0301", "\u00E9")]                       // e + acute -> é
    [InlineData("\u00E9", "\u00E9")]                        // already composed
    [InlineData("A\u030A", "\u00C5")]                       // A + ring -> Å (not the Ångström sign)
    [InlineData("\u212B", "\u00C5")]                        // Ångström sign: singleton decomposition, never recomposed
    [InlineData("a\u0323\u0302", "\u1EAD")]                 // dot below (220) and circumflex (230): ậ
    [InlineData("a\u0302\u0323", "\u1EAD")]                 // same marks in the other order: canonical ordering first
    [InlineData("q\u0307\u0323", "q\u0323\u0307")]          // no composite exists: only reordered
    [InlineData("\u1100\u1161\u11A8", "\uAC01")]            // Hangul L V T -> 각
    [InlineData("\uAC00\u11A8", "\uAC01")]                  // LV syllable + T -> LVT
    [InlineData("\u0958", "\u0915\u093C")]                  // composition exclusion: stays decomposed
    [InlineData("\u0344", "\u0308\u0301")]                  // non-starter decomposition
    [InlineData("e\u0301\u0301", "\u00E9\u0301")]           // é has no composite with a second acute
    [InlineData("😀e\u0301", "😀\u00E9")]                   // surrogate pairs pass through
    [InlineData("\uD800x\u0301", "\uD800x\u0301")]          // a lone surrogate is kept, x + acute has no composite
    public void Normalizes_to_form_c(string input, string expected) => Assert.Equal(expected, UnicodeNfc.Normalize(input));

    [Fact]
    public void Normalization_is_idempotent_on_mixed_text()
    {
        var rng = new Random(5);
        string[] parts = ["e", "\u0301", "\u0323", "\u0302", "\u1100", "\u1161", "\u11A8", "\uAC00", "Å", "\u212B", " ", "日", "😀"];
        for (int n = 0; n < 500; n++)
        {
            var s = string.Concat(Enumerable.Range(0, rng.Next(1, 12)).Select(_ => parts[rng.Next(parts.Length)]));
            var once = UnicodeNfc.Normalize(s);
            Assert.Equal(once, UnicodeNfc.Normalize(once));
        }
    }
}
