using System.Text.Json.Nodes;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>What a task is, written beside its JSONL files as <c>task.json</c>.</summary>
/// <param name="Name">Task name (folder name): spam, sotu-party, wordnet-define.</param>
/// <param name="Kind">Classification or generation.</param>
/// <param name="Description">One paragraph: source, label, how it was sampled.</param>
/// <param name="PromptFormat">The prompt template, e.g. <c>{body}\nLabel:</c>.</param>
/// <param name="Labels">Classification labels and their completions (empty for generation).</param>
/// <param name="Groups">Names of the sub-populations in the records' group field (empty when unused).</param>
/// <param name="Seed">Seed of the split and sampling.</param>
/// <param name="Details">Counts, budgets and statistics (free-form JSON).</param>
public sealed record TaskInfo(string Name, TaskKind Kind, string Description, string PromptFormat,
    IReadOnlyList<TaskLabel> Labels, IReadOnlyList<string> Groups, ulong Seed, JsonObject Details);
