namespace TransPeft.Engine.Evaluation;

/// <summary>How <see cref="TaskEvaluator"/> turns records into token ids and scores them.</summary>
public sealed record EvalOptions
{
    /// <summary>Prepend the model's bos_token_id to every prompt (as a Llama tokenizer would).</summary>
    public bool PrependBos { get; init; }

    /// <summary>Classification: the task-level candidate labels, used for records without their own "labels".
    /// When neither exists, the candidates are the distinct gold completions of the whole task.</summary>
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>Generation: answer extraction regex (see <see cref="AnswerExtractor"/>); null = trimmed first line.</summary>
    public string? AnswerPattern { get; init; }
    /// <summary>Generation: the gold completion is the answer itself (trimmed), not text to extract it from.</summary>
    public bool GoldIsAnswer { get; init; }
    /// <summary>Generation: compare answers that both read as numbers by value ("1,000" = "1000.0").</summary>
    public bool NumericEquality { get; init; } = true;
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>Generation: stop strings; null = "\n" in first-line mode, none with a pattern.</summary>
    public IReadOnlyList<string>? StopStrings { get; init; }

    /// <summary>Loss: sequences per forward (rows padded to the longest of the batch; padding is not counted).</summary>
    public int LossBatchSize { get; init; } = 8;

    /// <summary>Keep one prediction record per example in the result (for inspection; large for big tasks).</summary>
    public bool KeepPredictions { get; init; }

    public void Validate()
    {
        if (MaxNewTokens <= 0) throw new ArgumentException($"max new tokens must be positive, got {MaxNewTokens}");
        if (LossBatchSize <= 0) throw new ArgumentException($"loss batch size must be positive, got {LossBatchSize}");
        if (Labels is { } l && (l.Count == 0 || l.Distinct(StringComparer.Ordinal).Count() != l.Count))
            throw new ArgumentException("task labels must be a non-empty list of distinct strings");
    }
}
