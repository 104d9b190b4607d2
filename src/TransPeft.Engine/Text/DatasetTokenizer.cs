using System.Security.Cryptography;
using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Text;

/// <summary>
/// The tokenizer a dataset is encoded with, plus what the dataset code must know about it.
/// <paramref name="Identity"/> names the tokenizer in the tokenization cache key: two tokenizers
/// that could encode a text differently must have different identities (use <see cref="HashFiles"/>
/// over the tokenizer's files). The tokenizer must not add special tokens on its own: BOS (when
/// <paramref name="BosId"/> is set) and EOS are added here, once per sequence.
/// </summary>
public sealed record DatasetTokenizer(Tokenizer Tokenizer, string Identity, int EosId, int? BosId = null, int? PadId = null)
{
    /// <summary>The id written at pad positions (their labels are -100, so its value never matters to the loss).</summary>
    public int PadOrEos => PadId ?? EosId;

    /// <summary>
    /// The dataset tokenizer of a model, built one way for training, scoring and evaluation: EOS from the tokenizer
    /// or the model config, BOS only when the tokenizer's model expects it, and an identity hashing the tokenizer
    /// file. Without a tokenizer (<paramref name="tokenizer"/> null: a folder with only config.json and weights)
    /// only pre-tokenized records can be read; text fails with a message saying so.
    /// </summary>
    public static DatasetTokenizer ForModel(TokenizerInfo? tokenizer, Model.ModelConfig config, string modelDir)
    {
        int? configEos = config.EosTokenIds.Length > 0 ? config.EosTokenIds[0] : null;
        if (tokenizer is null)
            return new DatasetTokenizer(new PreTokenizedOnlyTokenizer(modelDir), "none", configEos ?? 0);
        if (tokenizer.VocabSize > config.VocabSize)
            throw new ArgumentException($"tokenizer {tokenizer.Source} has {tokenizer.VocabSize} ids but the model's vocab_size is {config.VocabSize}: they do not belong together");
        int eos = tokenizer.EosTokenId ?? configEos
            ?? throw new ArgumentException($"{tokenizer.Source}: the tokenizer has no end-of-text token and {modelDir}/config.json no eos_token_id");
        var identity = HashFiles("tokenizer", File.Exists(tokenizer.Source) ? [tokenizer.Source] : []) + "|" + tokenizer.Source;
        return new DatasetTokenizer(tokenizer.Tokenizer, identity, eos, tokenizer.AddBosToken ? tokenizer.BosTokenId : null);
    }

    internal int[] Encode(string text) => text.Length == 0 ? [] : [.. Tokenizer.EncodeToIds(text)];

    /// <summary>A stable identity for a tokenizer loaded from files: a label plus the SHA-256 of their bytes.</summary>
    public static string HashFiles(string label, params string[] paths)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in paths)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(Path.GetFileName(p) + "\0"));
            sha.AppendData(File.ReadAllBytes(p));
        }
        return $"{label}:{Convert.ToHexStringLower(sha.GetHashAndReset())}";
    }
}
