using System.Text.Json.Nodes;
using TransPeft.Engine.Text;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>Token statistics of a set of records, for task.json and the data report.</summary>
public static class TaskStatistics
{
    public static JsonObject Describe(IReadOnlyList<TaskRecord> records, CompactGpt2Tokenizer tokenizer)
    {
        var o = new JsonObject { ["count"] = records.Count };
        if (records.Count == 0) return o;
        var prompt = records.Select(r => tokenizer.CountTokens(r.Prompt)).ToArray();
        var completion = records.Select(r => tokenizer.CountTokens(r.Completion)).ToArray();
        var coverage = tokenizer.MeasureCoverage(records.Select(r => r.Prompt + r.Completion));
        o["prompt_tokens_mean"] = Math.Round(prompt.Average(), 2);
        o["prompt_tokens_max"] = prompt.Max();
        o["completion_tokens_mean"] = Math.Round(completion.Average(), 2);
        o["completion_tokens_max"] = completion.Max();
        o["byte_fallback_rate"] = Math.Round(coverage.ByteFallbackRate, 5);
        foreach (var g in records.Where(r => r.Label is not null).GroupBy(r => r.Label!).OrderBy(g => g.Key, StringComparer.Ordinal))
            o["label_" + g.Key] = g.Count();
        foreach (var g in records.Where(r => r.Group is not null).GroupBy(r => r.Group!).OrderBy(g => g.Key, StringComparer.Ordinal))
            o["group_" + g.Key] = g.Count();
        return o;
    }
}
