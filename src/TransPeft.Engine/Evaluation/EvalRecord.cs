namespace TransPeft.Engine.Evaluation;

/// <summary>
/// One evaluation example: the prompt the model sees, the gold completion (the label text of a classification
/// task, the reference answer of a generation task), and optionally this record's own candidate labels.
/// <see cref="Line"/> is the 1-based line in the JSONL file (0 when built in code), used in error messages.
/// </summary>
public sealed record EvalRecord(string Prompt, string Completion, IReadOnlyList<string>? Labels = null, int Line = 0)
{
    internal string Where(string? source) => Line > 0 ? $"{source ?? "records"}:{Line}" : $"{source ?? "records"}[\"{Shorten(Prompt)}\"]";

    private static string Shorten(string s) => s.Length <= 40 ? s.ReplaceLineEndings("⏎") : s[..37].ReplaceLineEndings("⏎") + "...";
}
