using System.Buffers;
using System.Text;
using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.DataPipeline;

public class CompactGpt2TokenizerTests
{
    private static readonly string[] TrainingTexts =
    [
        "Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, " +
        "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery part of the world.",
        "The whale, the whale! The white whale! Call me, Ishmael, and sail the sea.",
    ];

    private static readonly string[] HardTexts =
    [
        "",
        "Hello world, this is a LoRA test.",
        "héllo wörld — “quotes” ‘single’ … naïve café",
        "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
        "日本語のテキスト、中文文本，한국어 텍스트",
        "עברית ועربية mixed with English",
        "combining e\u0301 a\u0308 and zero\u200Bwidth",
        "tabs\tand\r\nnewlines\n\n  indented   spaces  ",
        "control \u0001\u0007 chars and NUL \0 inside",
        "doc one<|endoftext|>doc two",
        "harpooneer's Pequod Queequeg Starbuck supercalifragilisticexpialidocious 1234567890",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝒜 and ancient 𐌰𐌱",
    ];

    private static CompactGpt2Tokenizer Small(TokenizerFallback f) => CompactGpt2Tokenizer.Train(TrainingTexts, 300, f);

    [Theory]
    [InlineData(TokenizerFallback.Bytes)]
    [InlineData(TokenizerFallback.KeptPieces)]
    public void Encode_decode_round_trips_any_text_without_an_unknown_token(TokenizerFallback fallback)
    {
        var tok = Small(fallback);
        Assert.InRange(tok.VocabSize, 258, 300);
        foreach (var text in HardTexts)
        {
            var ids = tok.Encode(text);
            Assert.All(ids, id => Assert.InRange(id, 0, tok.VocabSize - 1));
            Assert.Equal(text, tok.Decode(ids));
            Assert.Equal(ids, tok.EncodeToIds(text)); // the Tokenizer base-class API gives the same ids
            Assert.Equal(ids.Length, tok.CountTokens(text));
        }
    }

    [Fact]
    public void Ids_follow_the_documented_layout()
    {
        // Keep exactly "Hello" (GPT-2 15496) and " world" (995): "Hello world," = [257, 258, byte ','].
        var tok = CompactGpt2Tokenizer.FromKeptIds([15496, 995]);
        Assert.Equal(259, tok.VocabSize);
        Assert.Equal([257, 258, 1 + ','], tok.Encode("Hello world,"));
        Assert.Equal([1 + 'a', 0, 1 + 'b'], tok.Encode("a<|endoftext|>b"));
        Assert.Equal("<|endoftext|>", tok.Decode([0]));
        Assert.Equal("Hello", tok.TokenText(257));
        Assert.Equal("<0xE2>", tok.TokenText(1 + 0xE2));
    }

    [Fact]
    public void Tokens_outside_the_kept_set_fall_back_to_bytes_or_to_kept_pieces()
    {
        // " world" is GPT-2 995; " wor" and "ld" are kept pieces of it (GPT-2 ids taken from the encoder itself).
        var gpt2 = TiktokenTokenizer.CreateForModel("gpt2");
        var wor = gpt2.EncodeToIds(" wor").Single();
        var ld = gpt2.EncodeToIds("ld").Single();
        var bytes = CompactGpt2Tokenizer.FromKeptIds([wor, ld], TokenizerFallback.Bytes);
        Assert.Equal(" world".Select(c => 1 + c), bytes.Encode(" world"));
        var pieces = CompactGpt2Tokenizer.FromKeptIds([wor, ld], TokenizerFallback.KeptPieces);
        Assert.Equal([257, 258], pieces.Encode(" world"));
        Assert.Equal(" world", pieces.Decode([257, 258]));
        var cov = pieces.MeasureCoverage([" world"]);
        Assert.Equal(1, cov.Gpt2Tokens);
        Assert.Equal(1, cov.Gpt2TokensFallenBack);
        Assert.Equal(2, cov.FallbackTokens);
        Assert.Equal(0, cov.ByteFallbackTokens);
        var bcov = bytes.MeasureCoverage([" world"]);
        Assert.Equal(6, bcov.ByteFallbackTokens);
        Assert.Equal(1.0, bcov.ByteFallbackRate);
    }

    [Fact]
    public void Training_keeps_the_most_frequent_multi_byte_tokens_deterministically()
    {
        var a = CompactGpt2Tokenizer.Train(TrainingTexts, 270);
        var b = CompactGpt2Tokenizer.Train(TrainingTexts.Reverse(), 270);
        Assert.Equal(a.KeptGpt2Ids, b.KeptGpt2Ids); // order of texts does not matter
        Assert.Equal(13, a.KeptGpt2Ids.Count);
        Assert.Equal(270, a.VocabSize);
        // " whale" (3 times) and " the"/"," etc. are the most frequent; single-byte tokens are never "kept" (bytes cover them).
        var gpt2 = TiktokenTokenizer.CreateForModel("gpt2");
        Assert.Contains(gpt2.EncodeToIds(" whale").Single(), a.KeptGpt2Ids);
        Assert.DoesNotContain(gpt2.EncodeToIds(",").Single(), a.KeptGpt2Ids);
        Assert.Throws<ArgumentOutOfRangeException>(() => CompactGpt2Tokenizer.Train(TrainingTexts, 100));
    }

    [Fact]
    public void Save_and_load_give_the_same_tokenizer_and_bad_files_name_the_field()
    {
        using var tmp = new TempDir();
        var tok = Small(TokenizerFallback.KeptPieces);
        var path = Path.Combine(tmp.Path, "tokenizer.json");
        tok.Save(path);
        var back = CompactGpt2Tokenizer.Load(path);
        Assert.Equal(tok.KeptGpt2Ids, back.KeptGpt2Ids);
        Assert.Equal(tok.Fallback, back.Fallback);
        foreach (var t in HardTexts) Assert.Equal(tok.Encode(t), back.Encode(t));

        var json = File.ReadAllText(path);
        File.WriteAllText(path, json.Replace("\"vocab_size\":" + tok.VocabSize, "\"vocab_size\":5"));
        var e = Assert.Throws<TokenizerFormatException>(() => CompactGpt2Tokenizer.Load(path));
        Assert.Contains("vocab_size", e.Message);
        Assert.Contains(path, e.Message);

        var node = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        node["kept_gpt2_ids"]![0] = 11; // "," is a single byte: the byte ids already cover it
        File.WriteAllText(path, node.ToJsonString());
        var k = Assert.Throws<TokenizerFormatException>(() => CompactGpt2Tokenizer.Load(path));
        Assert.Contains("kept_gpt2_ids", k.Message);
        Assert.Contains("single byte", k.Message);
        File.WriteAllText(path, json.Replace("\"fallback\":\"kept_pieces\"", "\"fallback\":\"unk\""));
        Assert.Contains("fallback", Assert.Throws<TokenizerFormatException>(() => CompactGpt2Tokenizer.Load(path)).Message);
    }

    [Fact]
    public void Truncation_cuts_between_characters_and_reports_what_it_consumed()
    {
        var tok = Small(TokenizerFallback.Bytes);
        var text = "sail 😀👍🏽 日本語 the whale";
        int total = tok.Encode(text).Length;
        for (int max = 0; max <= total; max++)
        {
            var prefix = tok.TruncateToTokens(text, max, out int count);
            Assert.True(count <= max);
            Assert.StartsWith(prefix, text);
            Assert.Equal(count, tok.Encode(prefix).Length);
            Assert.DoesNotContain('\uFFFD', tok.Decode(tok.Encode(prefix)));
            var ids = tok.EncodeToIds(text, max, out var normalized, out int consumed);
            Assert.Null(normalized);
            Assert.Equal(text[..consumed], tok.Decode(ids));
        }
        Assert.Equal(text, tok.TruncateToTokens(text, total, out _));
    }

    [Fact]
    public void Decode_into_a_small_buffer_stops_at_a_whole_character()
    {
        var tok = Small(TokenizerFallback.Bytes);
        var ids = tok.Encode("ab😀cd");
        var buffer = new char[3];
        var status = tok.Decode(ids, buffer, out int used, out int written);
        Assert.Equal(OperationStatus.DestinationTooSmall, status);
        Assert.Equal("ab", new string(buffer, 0, written)); // the emoji needs 2 chars and does not fit after "ab"
        Assert.Equal(tok.Encode("ab").Length, used);
        var big = new char[16];
        Assert.Equal(OperationStatus.Done, tok.Decode(ids, big, out used, out written));
        Assert.Equal("ab😀cd", new string(big, 0, written));
        Assert.Equal(ids.Length, used);
        Assert.Throws<ArgumentOutOfRangeException>(() => tok.Decode([tok.VocabSize]));
    }
}
