namespace TransPeft.Engine.Text;

/// <summary>How well a compacted vocabulary covers some text.</summary>
/// <param name="Characters">UTF-16 characters encoded.</param>
/// <param name="Gpt2Tokens">GPT-2 tokens the text splits into.</param>
/// <param name="Gpt2TokensFallenBack">GPT-2 tokens outside the kept set (an UNK-based compaction would have lost them).</param>
/// <param name="Tokens">Ids of the compact tokenizer (what the model sees).</param>
/// <param name="FallbackTokens">Ids produced by spelling fallen-back GPT-2 tokens (kept pieces and bytes).</param>
/// <param name="ByteFallbackTokens">Of those, byte ids (single-byte GPT-2 tokens that are themselves bytes do not count).</param>
public sealed record TokenizerCoverage(long Characters, long Gpt2Tokens, long Gpt2TokensFallenBack, long Tokens, long FallbackTokens, long ByteFallbackTokens)
{
    /// <summary>Share of the model's tokens that are fallback bytes.</summary>
    public double ByteFallbackRate => Tokens == 0 ? 0 : (double)ByteFallbackTokens / Tokens;
    /// <summary>Share of the model's tokens that come from spelling a fallen-back GPT-2 token (pieces or bytes).</summary>
    public double FallbackRate => Tokens == 0 ? 0 : (double)FallbackTokens / Tokens;
    /// <summary>Share of GPT-2 tokens not in the kept set (what an UNK-based compaction would have turned into UNK).</summary>
    public double Gpt2FallbackRate => Gpt2Tokens == 0 ? 0 : (double)Gpt2TokensFallenBack / Gpt2Tokens;
    public double CharactersPerToken => Tokens == 0 ? 0 : (double)Characters / Tokens;
    /// <summary>Compact tokens per GPT-2 token (1.0 = no cost from compaction).</summary>
    public double TokensPerGpt2Token => Gpt2Tokens == 0 ? 0 : (double)Tokens / Gpt2Tokens;

    public TokenizerCoverage Add(TokenizerCoverage o) =>
        new(Characters + o.Characters, Gpt2Tokens + o.Gpt2Tokens, Gpt2TokensFallenBack + o.Gpt2TokensFallenBack, Tokens + o.Tokens,
            FallbackTokens + o.FallbackTokens, ByteFallbackTokens + o.ByteFallbackTokens);

    public static TokenizerCoverage Empty { get; } = new(0, 0, 0, 0, 0, 0);

    public override string ToString() =>
        $"{Characters:N0} chars -> {Tokens:N0} tokens ({CharactersPerToken:0.00} chars/token, {TokensPerGpt2Token:0.000} per GPT-2 token); " +
        $"{Gpt2FallbackRate:P2} of GPT-2 tokens not kept; fallback ids {FallbackRate:P2} of tokens, bytes {ByteFallbackRate:P2}";
}
