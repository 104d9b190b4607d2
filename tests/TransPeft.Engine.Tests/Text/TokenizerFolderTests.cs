using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Text;

/// <summary>Choosing the tokenizer file of a model folder, SentencePiece models, and tokenizer_config.json.</summary>
public sealed class TokenizerFolderTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private string ModelFile => Path.Combine(_dir.Path, TokenizerLoader.SentencePieceFileName);
    private string ConfigFile => Path.Combine(_dir.Path, TokenizerLoader.TokenizerConfigFileName);

    [Fact]
    public void SentencePiece_model_is_loaded_from_tokenizer_model()
    {
        File.WriteAllBytes(ModelFile, TinyTokenizerFiles.SentencePieceModel());
        var info = TokenizerLoader.Load(_dir.Path);
        Assert.Equal(ModelFile, info.Source);
        Assert.Equal([7, 12], info.Tokenizer.EncodeToIds("hello world")); // ▁hello ▁world, no BOS added by encoding
        Assert.Equal("hello world", info.Tokenizer.Decode([7, 12]));
        Assert.Equal([5, 4], info.Tokenizer.EncodeToIds("hell")); // ▁he + ll: no piece "▁hell", merging stops
        Assert.Equal(21, info.VocabSize);
        Assert.Equal(1, info.BosTokenId);
        Assert.Equal(2, info.EosTokenId);
        Assert.True(info.AddBosToken); // Llama-2 convention when tokenizer_config.json does not say otherwise
    }

    [Fact]
    public void Tokenizer_config_overrides_add_bos_token()
    {
        File.WriteAllBytes(ModelFile, TinyTokenizerFiles.SentencePieceModel());
        File.WriteAllText(ConfigFile, "{\"add_bos_token\": false, \"eos_token\": \"</s>\", \"bos_token\": {\"content\": \"<s>\", \"lstrip\": false}}");
        var info = TokenizerLoader.Load(_dir.Path);
        Assert.False(info.AddBosToken);
        Assert.Equal(1, info.BosTokenId);
        Assert.Equal(2, info.EosTokenId);
    }

    [Fact]
    public void Corrupt_sentencepiece_model_is_rejected_naming_the_file()
    {
        File.WriteAllText(ModelFile, "{\"this is\": \"not a protobuf\"}");
        var e = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.FromModelFolder(_dir.Path));
        Assert.Equal(ModelFile, e.FilePath);
        Assert.Contains("a SentencePiece model (protobuf ModelProto)", e.Message);

        File.WriteAllBytes(ModelFile, []);
        e = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.FromModelFolder(_dir.Path));
        Assert.Contains(ModelFile, e.Message);
    }

    [Fact]
    public void SentencePiece_style_tokenizer_json_defers_to_tokenizer_model_beside_it()
    {
        TinyTokenizerFiles.Write(_dir.Path, TinyTokenizerFiles.SentencePieceStyleJson());
        File.WriteAllBytes(ModelFile, TinyTokenizerFiles.SentencePieceModel());
        var info = TokenizerLoader.Load(_dir.Path);
        Assert.Equal(ModelFile, info.Source);
        Assert.Equal([7, 12], info.Tokenizer.EncodeToIds("hello world"));
    }

    [Fact]
    public void SentencePiece_style_tokenizer_json_alone_is_refused_naming_the_field()
    {
        TinyTokenizerFiles.Write(_dir.Path, TinyTokenizerFiles.SentencePieceStyleJson());
        var e = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(_dir.Path));
        Assert.Equal("model.byte_fallback", e.Field);
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void Broken_byte_level_tokenizer_json_is_not_hidden_by_a_tokenizer_model()
    {
        var json = TinyTokenizerFiles.ByteLevelBpe();
        json["model"]!["merges"]![0] = "bc";
        TinyTokenizerFiles.Write(_dir.Path, json);
        File.WriteAllBytes(ModelFile, TinyTokenizerFiles.SentencePieceModel());
        var e = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(_dir.Path));
        Assert.Equal("model.merges[0]", e.Field);
    }

    [Fact]
    public void Folder_without_tokenizer_files_names_both()
    {
        var e = Assert.Throws<FileNotFoundException>(() => TokenizerLoader.FromModelFolder(_dir.Path));
        Assert.Contains("no tokenizer.json and no tokenizer.model", e.Message);
        Assert.Contains(_dir.Path, e.Message);
        Assert.Throws<DirectoryNotFoundException>(() => TokenizerLoader.FromModelFolder(Path.Combine(_dir.Path, "missing")));
    }

    [Theory]
    [InlineData("{\"eos_token\": \"<|nope|>\"}", "eos_token", "\"<|nope|>\" is not one")]
    [InlineData("{\"bos_token\": 5}", "bos_token", "a token string or {\"content\": ...}, got 5")]
    [InlineData("{\"add_bos_token\": \"yes\"}", "add_bos_token", "true or false")]
    [InlineData("{\"eos_token\": ", "(file)", "well-formed JSON")]
    [InlineData("{\"eos_token\": \"a\", \"eos_token\": \"b\"}", "(file)", "without repeated keys")]
    public void Broken_tokenizer_config_is_rejected_naming_file_and_field(string config, string field, string expected)
    {
        TinyTokenizerFiles.Write(_dir.Path, TinyTokenizerFiles.ByteLevelBpe());
        File.WriteAllText(ConfigFile, config);
        var e = Assert.Throws<TokenizerFormatException>(() => TokenizerLoader.Load(_dir.Path));
        Assert.Equal(ConfigFile, e.FilePath);
        Assert.Equal(field, e.Field);
        Assert.Contains(expected, e.Message);
    }
}
