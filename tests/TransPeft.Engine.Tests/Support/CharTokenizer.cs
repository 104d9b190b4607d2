using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Tests.Support;

/// <summary>
/// A character-level tokenizer for tests: a Microsoft.ML.Tokenizers BPE with one token per character and no
/// merges, so every id is known by hand (id = position in <see cref="Alphabet"/>) and fits a tiny model's vocabulary.
/// </summary>
internal static class CharTokenizer
{
    /// <summary>Id 0 is the unknown token.</summary>
    public const string Alphabet = "?abcdefghijklmnopqrstuvwxyz0123456789 :.,\n";

    public static Tokenizer Create()
    {
        var vocab = Alphabet.Select((ch, i) => new KeyValuePair<string, int>(ch.ToString(), i)).ToList();
        vocab[0] = new KeyValuePair<string, int>("[UNK]", 0);
        return BpeTokenizer.Create(new BpeOptions(vocab)
        {
            UnknownToken = "[UNK]",
            // Every character is its own pre-token (the default pre-tokenizer would drop whitespace).
            PreTokenizer = new RegexPreTokenizer(new System.Text.RegularExpressions.Regex(@"[\s\S]"), null),
        });
    }

    public static int[] Ids(string text) => text.Select(ch => Math.Max(0, Alphabet.IndexOf(ch, 1))).ToArray();
}
