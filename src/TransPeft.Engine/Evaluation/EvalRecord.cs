namespace TransPeft.Engine.Evaluation;

/// <summary>
/// One evaluation example: the prompt the model sees, the gold completion (the label text of a classification
/// task, the reference answer of a generation task), and optionally this record's own candidate labels.
/// <see cref="Line"/> is the 1-based line in the JSONL file (0 when built in code), used in error messages.
/// A <see cref="Tokenized"/> record holds token ids instead of text (no tokenizer needed): its prompt, completion
/// and labels are id lists spelled as space-separated numbers ("15 7 301").
/// </summary>
public sealed record EvalRecord(string Prompt, string Completion, IReadOnlyList<string>? Labels = null, int Line = 0)
{
    public bool Tokenized { get; init; }

    /// <summary>The spelling of an id list in a tokenized record.</summary>
    public static string SpellIds(IEnumerable<int> ids) => string.Join(' ', ids);

    internal string Where(string? source) => Line > 0 ? $"{source ?? "records"}:{Line}" : $"{source ?? "records"}[\"{Shorten(Prompt)}\"]";

    private static string Shorten(string s) => s.Length <= 40 ? s.ReplaceLineEndings("⏎") : s[..37].ReplaceLineEndings("⏎") + "...";
}
