namespace TransPeft.Engine.Evaluation;

/// <summary>One generated example: the text, the answers extracted from it and from the gold completion.</summary>
public sealed record GenerationPrediction(int Line, string Generated, string? Answer, string GoldAnswer, bool Correct, string StopReason);

/// <summary>Exact-match accuracy of greedy generations after answer extraction.</summary>
public sealed record ExactMatchResult(
    int Count, int Correct, double ExactMatch, ConfidenceInterval Ci95, string Extractor, int MaxNewTokens,
    int NoAnswer, IReadOnlyList<GenerationPrediction>? Predictions)
{
    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, ResultJsonContext.Default.ExactMatchResult);
}
