namespace TransPeft.Engine.Data.Tokenization;

/// <summary>A saved tokenizer file is malformed; the message names the file and the field.</summary>
public sealed class TokenizerFormatException(string file, string field, string expected)
    : Exception($"{file}: field '{field}': expected {expected}");
