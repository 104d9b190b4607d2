namespace TransPeft.Engine.Text;

/// <summary>How <see cref="CompactGpt2Tokenizer"/> spells a GPT-2 token that is not in its kept set. Neither needs an unknown token.</summary>
public enum TokenizerFallback
{
    /// <summary>The token's bytes as byte ids, one id per byte.</summary>
    Bytes,
    /// <summary>The shortest sequence of kept tokens and byte ids whose bytes make up the token (" harpooneer" -> " harp" "oon" "eer").</summary>
    KeptPieces,
}
