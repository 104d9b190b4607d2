namespace TransPeft.Engine.Inference;

/// <summary>How to pick each next token and when to stop.</summary>
public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Argmax decoding; ignores temperature, top-k and top-p.</summary>
    public bool Greedy { get; init; }
    public double Temperature { get; init; } = 1.0;
    /// <summary>Keep only the k most likely tokens (0 = off).</summary>
    public int TopK { get; init; }
    /// <summary>Nucleus sampling: keep the smallest set whose probability reaches p (1 = off).</summary>
    public double TopP { get; init; } = 1.0;
    public int Seed { get; init; }
    /// <summary>Stop after emitting one of these ids (the model config's eos_token_id by default).</summary>
    public IReadOnlyList<int>? EosTokenIds { get; init; }
    /// <summary>Stop when the decoded continuation contains one of these strings (needs a tokenizer); the string is cut off.</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    public void Validate()
    {
        if (MaxNewTokens < 0) throw new ArgumentException($"max new tokens must be >= 0, got {MaxNewTokens}");
        // Written as !(x > 0) so that NaN, which fails every comparison, is refused too.
        if (!Greedy && !(Temperature > 0 && double.IsFinite(Temperature))) throw new ArgumentException($"temperature must be a finite number > 0 (use greedy decoding for argmax), got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"top-k must be >= 0, got {TopK}");
        if (!(TopP > 0 && TopP <= 1)) throw new ArgumentException($"top-p must be in (0, 1], got {TopP}");
    }
}
