using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Text;

/// <summary>
/// tokenizer.json's "NFC" normalizer (Qwen2/Qwen3), which Microsoft.ML.Tokenizers does not ship: the text
/// is put in Normalization Form C (<see cref="UnicodeNfc"/>) before pre-tokenization, as the Hugging Face
/// pipeline does.
/// </summary>
internal sealed class NfcNormalizer : Normalizer
{
    public static readonly NfcNormalizer Instance = new();

    public override string Normalize(string original) => UnicodeNfc.Normalize(original);

    public override string Normalize(ReadOnlySpan<char> original) => UnicodeNfc.Normalize(original.ToString());
}
