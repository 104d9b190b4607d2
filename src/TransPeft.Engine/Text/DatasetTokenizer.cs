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
