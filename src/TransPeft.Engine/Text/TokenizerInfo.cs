using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Text;

/// <summary>
/// A loaded tokenizer with the facts a trainer needs beside it.
/// </summary>
/// <param name="Tokenizer">Encodes and decodes. Encoding never adds BOS/EOS by itself.</param>
/// <param name="Source">The file or name it was loaded from.</param>
/// <param name="VocabSize">Largest token id + 1 (special tokens included): the smallest embedding table that fits.
/// Checkpoints often pad beyond it (Qwen2.5: 151,936 rows for 151,665 tokens).</param>
/// <param name="BosTokenId">Beginning-of-text token, when the tokenizer has one.</param>
/// <param name="EosTokenId">End-of-text token (documents are separated by it when packing), when known.</param>
/// <param name="AddBosToken">The model's own tokenizer puts BOS before every text (Llama-2 and Llama-3 do, Qwen and GPT-2 do not).</param>
public sealed record TokenizerInfo(Tokenizer Tokenizer, string Source, int VocabSize, int? BosTokenId, int? EosTokenId, bool AddBosToken)
{
    /// <summary>A prompt's token ids: the text's, after BOS when the model expects one (<see cref="AddBosToken"/>).</summary>
    public int[] EncodePrompt(string text)
    {
        var ids = Tokenizer.EncodeToIds(text);
        return AddBosToken && BosTokenId is { } bos ? [bos, .. ids] : [.. ids];
    }
}
