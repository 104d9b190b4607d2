namespace TransPeft.Experiments.Data.Tasks;

/// <summary>
/// One example of a fine-tuning task, one JSONL line:
/// <c>{"id": ..., "prompt": ..., "completion": ..., "label": ..., "group": ...}</c>. The trainer feeds
/// prompt + completion and counts the loss on the completion only; completions start with a space so
/// that they tokenize as they would inside running text.
/// </summary>
/// <param name="Id">Unique within the task (message key, speech#chunk, word).</param>
/// <param name="Prompt">Model input.</param>
/// <param name="Completion">Target text.</param>
/// <param name="Label">Class name for classification tasks (one of the task's labels), else null.</param>
/// <param name="Group">A sub-population to report separately (e.g. rewritten vs stable words), else null.</param>
public sealed record TaskRecord(string Id, string Prompt, string Completion, string? Label = null, string? Group = null);
