namespace TransPeft.Engine.Text;

/// <summary>A tokenizer file (tokenizer.json, tokenizer.model, tokenizer_config.json) that cannot be used.
/// The message names the file, the field and what was expected.</summary>
public sealed class TokenizerFormatException(string path, string field, string expected)
    : FormatException(EngineErrors.OneLine($"{path}: field '{field}': expected {expected}"))
{
    public string FilePath { get; } = path;
    public string Field { get; } = field;
    /// <summary>The file is well-formed but not byte-level BPE (e.g. a SentencePiece-style tokenizer.json),
    /// so a tokenizer.model beside it may describe the same tokenizer.</summary>
    internal bool NotByteLevelBpe { get; init; }
}
