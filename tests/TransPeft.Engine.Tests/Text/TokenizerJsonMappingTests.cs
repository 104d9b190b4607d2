using System.Text.Json.Nodes;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Text;

/// <summary>
/// How a tokenizer.json maps onto Microsoft.ML.Tokenizers, on a hand-written byte-level BPE file, and
/// every way such a file is refused (error naming the file, the field and what was expected).
/// </summary>
public sealed class TokenizerJsonMappingTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private TokenizerInfo Load(JsonObject json)
    {
        TinyTokenizerFiles.Write(_dir.Path, json);
        return TokenizerLoader.Load(_dir.Path);
    }

    [Fact]
    public void Plain_bpe_follows_the_merge_order()
    {
        var info = Load(TinyTokenizerFiles.ByteLevelBpe());
        var t = info.Tokenizer;
        Assert.Equal([97, 256, 100], t.EncodeToIds("abcd"));      // b+c merges first; a|bc|d then has no merge
        Assert.Equal([257, 32, 258], t.EncodeToIds("ab cd"));     // "ab", " cd" -> Ġ (byte 0x20) + cd
        Assert.Equal([97, 256, 100, 260, 258], t.EncodeToIds("abcd<|eot|>cd")); // added token matched in the text
        Assert.Equal("abcd<|eot|>cd", t.Decode([97, 256, 100, 260, 258]));
        Assert.Equal(261, info.VocabSize);
        Assert.Null(info.BosTokenId);
        Assert.Null(info.EosTokenId);
    }

    [Fact]
    public void Ignore_merges_looks_whole_pieces_up_first()
    {
        var t = Load(TinyTokenizerFiles.ByteLevelBpe(ignoreMerges: true)).Tokenizer;
        Assert.Equal([259], t.EncodeToIds("abcd"));
        Assert.Equal([257, 32, 258], t.EncodeToIds("ab cd"));
        Assert.Equal([259, 260, 97], t.EncodeToIds("abcd<|eot|>a"));
        Assert.Equal("abcd<|eot|>a", t.Decode([259, 260, 97]));
    }

    [Fact]
    public void Merges_as_pairs_equal_merges_as_strings()
    {
        var a = Load(TinyTokenizerFiles.ByteLevelBpe()).Tokenizer;
        var b = Load(TinyTokenizerFiles.ByteLevelBpe(arrayMerges: true)).Tokenizer;
        foreach (var text in new[] { "abcd", "ab cd", "dcba abc", "x\ny" })
            Assert.Equal(a.EncodeToIds(text), b.EncodeToIds(text));
    }

    [Fact]
    public void Nfc_normalizer_is_applied()
    {
        var json = TinyTokenizerFiles.ByteLevelBpe();
        json["normalizer"] = new JsonObject { ["type"] = "NFC" };
        var t = Load(json).Tokenizer;
        // é composed is 2 UTF-8 bytes (C3 A9); decomposed e + U+0301 would be 3 (65 CC 81).
        Assert.Equal([0xC3, 0xA9], t.EncodeToIds("e\u0301"));
        Assert.Equal("é", t.Decode(t.EncodeToIds("e\u0301")));
    }

    [Fact]
    public void Pre_tokenizer_regex_decides_the_pieces()
    {
        // With ignore_merges a piece found whole in the vocabulary is one token, so the split shows:
        // Llama-3's Split regex glues a leading punctuation mark to the letters ("!abcd" is one piece,
        // not in the vocabulary, so merges run), GPT-2's ByteLevel regex splits it off ("!", "abcd").
        var llamaSplit = Load(TinyTokenizerFiles.ByteLevelBpe(ignoreMerges: true)).Tokenizer;
        Assert.Equal([33, 97, 256, 100], llamaSplit.EncodeToIds("!abcd"));

        var json = TinyTokenizerFiles.ByteLevelBpe(ignoreMerges: true);
        json["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        var gpt2 = Load(json).Tokenizer;
        Assert.Equal([33, 259], gpt2.EncodeToIds("!abcd"));
        Assert.Equal("!abcd", gpt2.Decode([33, 259]));
    }

    [Fact]
    public void Template_post_processor_and_tokenizer_config_give_bos_and_eos()
    {
        var json = TinyTokenizerFiles.ByteLevelBpe();
        ((JsonArray)json["added_tokens"]!).Add(TinyTokenizerFiles.AddedToken(261, "<|bos|>"));
        json["post_processor"] = new JsonObject
        {
            ["type"] = "TemplateProcessing",
            ["single"] = new JsonArray(
                new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = "<|bos|>", ["type_id"] = 0 } },
                new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
        };
        File.WriteAllText(Path.Combine(_dir.Path, TokenizerLoader.TokenizerConfigFileName),
            "{\"eos_token\": {\"__type\": \"AddedToken\", \"content\": \"<|eot|>\"}, \"model_max_length\": 1024}");
        var info = Load(json);
        Assert.Equal(261, info.BosTokenId);
        Assert.Equal(260, info.EosTokenId);
        Assert.True(info.AddBosToken);
        Assert.Equal(262, info.VocabSize);
        Assert.Equal([257], info.Tokenizer.EncodeToIds("ab")); // encoding itself never adds BOS
    }

    /// <summary>One broken tokenizer.json: what to break, the field the error must name, a phrase it must hold.</summary>
    public static TheoryData<string, Action<JsonObject>, string, string> Broken => new()
    {
        { "model-type", j => j["model"]!["type"] = "WordPiece", "model.type", "\"BPE\" (byte-level BPE tokenizers only), got \"WordPiece\"" },
        { "model-missing", j => j.Remove("model"), "model", "an object (the field is missing)" },
        { "negative-id", j => j["model"]!["vocab"]!["ab"] = -1, "model.vocab", "non-negative integer ids; token \"ab\" has -1" },
        { "shared-id", j => j["model"]!["vocab"]!["cd"] = 256, "model.vocab", "both have id 256" },
        { "raw-space-token", j => j["model"]!["vocab"]!["a b"] = 300, "model.vocab", "\"a b\" (id 300) has a character outside it" },
        { "missing-byte", j => j["model"]!["vocab"]!.AsObject().Remove("Ġ"), "model.vocab", "byte 0x20 ('Ġ') is missing" },
        { "merges-missing", j => j["model"]!.AsObject().Remove("merges"), "model.merges", "an array of merges" },
        { "merge-no-space", j => j["model"]!["merges"]![0] = "bc", "model.merges[0]", "exactly one space, got \"bc\"" },
        { "merge-bad-pair", j => j["model"]!["merges"]![1] = new JsonArray(1, 2), "model.merges[1]", "a \"left right\" string or a [\"left\", \"right\"] pair, got [" },
        { "merge-unknown-result", j => ((JsonArray)j["model"]!["merges"]!).Add("d a"), "model.merges[4]", "\"da\" (from the merge \"d a\") is not in it" },
        { "byte-fallback", j => j["model"]!["byte_fallback"] = true, "model.byte_fallback", "false" },
        { "dropout", j => j["model"]!["dropout"] = 0.1, "model.dropout", "null or 0" },
        { "subword-prefix", j => j["model"]!["continuing_subword_prefix"] = "##", "model.continuing_subword_prefix", "null or empty" },
        { "added-lstrip", j => j["added_tokens"]![0]!["lstrip"] = true, "added_tokens[0].lstrip", "'lstrip' is not supported" },
        { "added-twice", j => ((JsonArray)j["added_tokens"]!).Add(TinyTokenizerFiles.AddedToken(261, "<|eot|>")), "added_tokens[1].content", "\"<|eot|>\" appears twice" },
        { "added-steals-id", j => j["added_tokens"]![0]!["id"] = 97, "added_tokens[0].id", "97 (\"<|eot|>\") is \"a\" in model.vocab" },
        { "added-no-id", j => j["added_tokens"]![0]!.AsObject().Remove("id"), "added_tokens[0].id", "a non-negative integer" },
        { "pre-missing", j => j["pre_tokenizer"] = null, "pre_tokenizer", "a ByteLevel pre-tokenizer" },
        { "pre-metaspace", j => j["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace" }, "pre_tokenizer.type", "'Metaspace' here is not supported" },
        { "pre-no-bytelevel", j => ((JsonArray)j["pre_tokenizer"]!["pretokenizers"]!).RemoveAt(1), "pre_tokenizer", "a ByteLevel step" },
        { "split-removed", j => j["pre_tokenizer"]!["pretokenizers"]![0]!["behavior"] = "Removed", "pre_tokenizer.pretokenizers[0].behavior", "\"Isolated\"" },
        { "split-bad-regex", j => j["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = "(unclosed", "pre_tokenizer.pattern", "a regular expression .NET can run" },
        { "prefix-space", j => j["pre_tokenizer"]!["pretokenizers"]![1]!["add_prefix_space"] = true, "pre_tokenizer.pretokenizers[1].add_prefix_space", "false" },
        { "two-regexes", j => j["pre_tokenizer"]!["pretokenizers"]![1]!["use_regex"] = true, "pre_tokenizer.pretokenizers[1].use_regex", "two regex stages" },
        { "normalizer-lowercase", j => j["normalizer"] = new JsonObject { ["type"] = "Lowercase" }, "normalizer.type", "'Lowercase' is not supported" },
        { "decoder-wordpiece", j => j["decoder"] = new JsonObject { ["type"] = "WordPiece" }, "decoder.type", "\"ByteLevel\" for byte-level BPE, got \"WordPiece\"" },
        { "ignore-merges-order", j => { j["model"]!["ignore_merges"] = true; j["model"]!["merges"] = new JsonArray("a b", "b c", "c d", "ab cd"); },
            "model.ignore_merges", "merge 1 \"b c\" makes id 256 after id 257" },
        { "ignore-merges-split", j => { j["model"]!["ignore_merges"] = true; j["model"]!["vocab"]!["bcd"] = 261; ((JsonArray)j["model"]!["merges"]!).Add("bc d"); },
            "model.ignore_merges", "\"a bcd\" -> \"abcd\" is missing" },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public void Broken_tokenizer_json_is_rejected_naming_file_field_and_expectation(string caseName, Action<JsonObject> breakIt, string field, string expected)
    {
        _ = caseName;
        var json = TinyTokenizerFiles.ByteLevelBpe();
        breakIt(json);
        TinyTokenizerFiles.Write(_dir.Path, json);
        var e = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.FromModelFolder(_dir.Path));
        Assert.Equal(Path.Combine(_dir.Path, "tokenizer.json"), e.FilePath);
        Assert.Contains(Path.Combine(_dir.Path, "tokenizer.json"), e.Message);
        Assert.Equal(field, e.Field);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("{\"model\": ", "(file)", "well-formed JSON")]
    [InlineData("[1]", "(file)", "a JSON object")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"type\": \"BPE\"}}", "model.type", "the key appears twice")]
    public void Malformed_tokenizer_json_text_is_rejected(string text, string field, string expected)
    {
        File.WriteAllText(Path.Combine(_dir.Path, "tokenizer.json"), text);
        var e = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.FromModelFolder(_dir.Path));
        Assert.Equal(field, e.Field);
        Assert.Contains(expected, e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }
}
