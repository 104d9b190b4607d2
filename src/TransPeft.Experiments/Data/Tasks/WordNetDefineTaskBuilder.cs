using System.Text.Json.Nodes;
using TransPeft.Engine.Text;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>
/// "Define &lt;word&gt;:" -> " &lt;definition&gt;" from WordNet (the definition of the word's most frequent sense,
/// cut to N tokens). Each word carries a group (e.g. <c>rewritten</c> / <c>stable</c>) so that the test set
/// can be balanced across groups and the loss reported per group.
/// </summary>
public static class WordNetDefineTaskBuilder
{
    public const string Name = "wordnet-define";

    public static BuiltTask Build(IReadOnlyList<DefinitionItem> pool, CompactGpt2Tokenizer tokenizer, SamplingOptions sampling,
        int definitionTokens = 48, string? description = null, JsonObject? extraDetails = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(definitionTokens, 1);
        var records = pool.Select(i => new TaskRecord(i.Definition.Word, $"Define {i.Definition.Word}:",
            " " + tokenizer.TruncateToTokens(i.Definition.Definition, definitionTokens, out _).TrimEnd(), null, i.Group)).ToList();
        var dup = records.GroupBy(r => r.Id).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ArgumentException($"word '{dup.Key}' appears twice in the definition pool");
        var split = TaskSampler.SplitAndSample(records, r => r.Id, r => r.Id, r => r.Group!, sampling);
        var groups = records.Select(r => r.Group!).Distinct().OrderBy(g => g, StringComparer.Ordinal).ToList();
        var details = new JsonObject
        {
            ["words_in_pool"] = records.Count,
            ["definition_tokens"] = definitionTokens,
            ["sampling"] = $"train {sampling.TrainMode} cap {sampling.TrainCount}, test {sampling.TestMode} cap {sampling.TestCount} over groups",
            ["train"] = TaskStatistics.Describe(split.Train, tokenizer),
            ["test"] = TaskStatistics.Describe(split.Test, tokenizer),
        };
        foreach (var g in groups) details["pool_" + g] = records.Count(r => r.Group == g);
        if (extraDetails is not null) foreach (var kv in extraDetails) details[kv.Key] = kv.Value?.DeepClone();
        var info = new TaskInfo(Name, TaskKind.Generation,
            description ?? "WordNet 3.0 (Debian wordnet-base): \"Define <word>:\" -> the definition of its most frequent sense.",
            "Define {word}:", [], groups, sampling.Seed, details);
        return new BuiltTask(info, split.Train, split.Test);
    }
}
