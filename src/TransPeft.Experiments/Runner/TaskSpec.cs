using TransPeft.Experiments.Data;
using TransPeft.Experiments.Data.Tasks;
using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Evaluation;

namespace TransPeft.Experiments;

/// <summary>
/// A task as the experiment uses it: its files, its kind, the test records it is scored on (with each record's
/// group, e.g. rewritten/stable words) and the metrics reported for it.
/// </summary>
internal sealed record TaskSpec(string Name, TaskInfo Info, TaskPaths Paths, IReadOnlyList<EvalRecord> Test,
    IReadOnlyList<string?> TestGroups, IReadOnlyList<MetricSpec> Metrics)
{
    /// <summary>
    /// Classification: the candidate strings the decision is scored on, and whether they are each label's first
    /// token. Labels of different token counts bias a comparison of summed log-likelihoods towards the shorter
    /// one (" Republican" is 2 ids, " Democratic" 5: an adapter whose per-token probabilities are far from 1
    /// then always answers Republican). When the labels' first tokens differ and each is a token on its own, the
    /// decision is made there, as multiple-choice benchmarks score an answer letter; the adapter is still trained
    /// on the whole label.
    /// </summary>
    public IReadOnlyList<string> DecisionLabels { get; init; } = [];
    public bool FirstTokenDecision { get; init; }

    public bool IsClassification => Info.Kind == TaskKind.Classification;

    public MetricSpec Primary => Metrics.Single(m => m.IsPrimary);

    /// <summary>Reads a task folder; <paramref name="testLimit"/> &gt; 0 keeps that many test records, spread over the file.</summary>
    public static TaskSpec Load(TaskPaths paths, int testLimit, Tokenizer tokenizer)
    {
        var info = TaskFiles.ReadInfo(paths.InfoPath);
        var records = TaskFiles.ReadJsonl(paths.TestPath);
        if (records.Count == 0) throw new InvalidDataException($"{paths.TestPath}: the task has no test record");
        if (testLimit > 0 && records.Count > testLimit)
        {
            // Every k-th record: the test files are written in a seeded order that interleaves labels and groups.
            double stride = (double)records.Count / testLimit;
            records = Enumerable.Range(0, testLimit).Select(i => records[(int)(i * stride)]).ToList();
        }
        var groups = records.Select(r => r.Group).ToList();
        var metrics = new List<MetricSpec>();
        IReadOnlyList<string> decision = [];
        bool firstToken = false;
        if (info.Kind == TaskKind.Classification)
        {
            if (info.Labels.Count < 2) throw new InvalidDataException($"{paths.InfoPath}: field 'labels': a classification task needs at least 2 labels");
            var completions = info.Labels.Select(l => l.Completion).ToList();
            var first = completions.Select(c => tokenizer.EncodeToIds(c).FirstOrDefault(-1)).ToList();
            firstToken = first.All(f => f >= 0) && first.Distinct().Count() == first.Count
                && first.All(f => tokenizer.EncodeToIds(tokenizer.Decode([f])) is [var again] && again == f);
            decision = firstToken ? first.Select(f => tokenizer.Decode([f])).ToList() : completions;
            var map = completions.Zip(decision).ToDictionary(x => x.First, x => x.Second, StringComparer.Ordinal);
            records = records.Select(r => r with
            {
                Completion = map.TryGetValue(r.Completion, out var d) ? d
                    : throw new InvalidDataException($"{paths.TestPath}: record {r.Id}: field 'completion': one of the labels' completions [{string.Join(", ", completions.Select(c => $"\"{c}\""))}], got \"{r.Completion}\""),
            }).ToList();
            metrics.Add(new MetricSpec(MetricSpec.Accuracy, "accuracy", true, true));
            metrics.Add(new MetricSpec(MetricSpec.DecisionLoss, "decision loss", false, false));
        }
        else
        {
            metrics.Add(new MetricSpec(MetricSpec.Loss, "completion loss", false, true));
            foreach (var g in info.Groups)
                if (groups.Contains(g)) metrics.Add(MetricSpec.GroupLoss(g));
        }
        var test = records.Select((r, i) => new EvalRecord(r.Prompt, r.Completion, null, i + 1)).ToList();
        return new TaskSpec(info.Name, info, paths, test, groups, metrics) { DecisionLabels = decision, FirstTokenDecision = firstToken };
    }
}
