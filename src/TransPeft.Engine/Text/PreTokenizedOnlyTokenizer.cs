using System.Buffers;
using Microsoft.ML.Tokenizers;

namespace TransPeft.Engine.Text;

/// <summary>
/// Stands in for a tokenizer when a model folder has none (e.g. one written by `tpeft init`): pre-tokenized
/// records ({"input_ids", "labels"}) never touch it, and any text that would need encoding or decoding
/// fails with a message saying what is missing instead of a null reference.
/// </summary>
internal sealed class PreTokenizedOnlyTokenizer(string modelDir) : Tokenizer
{
    private InvalidOperationException Missing() => new(
        $"{modelDir} has no tokenizer, so only pre-tokenized records ({{\"input_ids\", \"labels\"}}) can be used; give a tokenizer (--tokenizer) for text");

    protected override EncodeResults<EncodedToken> EncodeToTokens(string? text, ReadOnlySpan<char> textSpan, EncodeSettings settings) => throw Missing();

    public override OperationStatus Decode(IEnumerable<int> ids, Span<char> destination, out int idsConsumed, out int charsWritten) => throw Missing();
}
