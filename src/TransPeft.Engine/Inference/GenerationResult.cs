namespace TransPeft.Engine.Inference;

/// <summary>The generated continuation (ids, and text when a tokenizer was given) and why it stopped.</summary>
public sealed record GenerationResult(IReadOnlyList<int> TokenIds, string? Text, string StopReason, double TokensPerSecond);
