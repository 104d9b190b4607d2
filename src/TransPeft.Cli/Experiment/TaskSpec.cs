using TransPeft.Engine.Data;
using TransPeft.Engine.Data.Tasks;
using TransPeft.Engine.Evaluation;

namespace TransPeft.Cli.Experiment;

/// <summary>
/// A task as the experiment uses it: its files, its kind, the test records it is scored on (with each record's
/// group, e.g. rewritten/stable words) and the metrics reported for it.
/// </summary>
internal sealed record TaskSpec(string Name, TaskInfo Info, TaskPaths Paths, IReadOnlyList<EvalRecord> Test,
    IReadOnlyList<string?> TestGroups, IReadOnlyList<MetricSpec> Metrics)
{
    public bool IsClassification => Info.Kind == TaskKind.Classification;

    public MetricSpec Primary => Metrics.Single(m => m.IsPrimary);

    /// <summary>Reads a task folder; <paramref name="testLimit"/> &gt; 0 keeps that many test records, spread over the file.</summary>
    public static TaskSpec Load(TaskPaths paths, int testLimit)
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
        var test = records.Select((r, i) => new EvalRecord(r.Prompt, r.Completion, null, i + 1)).ToList();
        var groups = records.Select(r => r.Group).ToList();
        var metrics = new List<MetricSpec>();
        if (info.Kind == TaskKind.Classification)
        {
            if (info.Labels.Count < 2) throw new InvalidDataException($"{paths.InfoPath}: field 'labels': a classification task needs at least 2 labels");
            metrics.Add(new MetricSpec(MetricSpec.Accuracy, "accuracy", true, true));
            metrics.Add(new MetricSpec(MetricSpec.LabelLoss, "label loss", false, false));
        }
        else
        {
            metrics.Add(new MetricSpec(MetricSpec.Loss, "completion loss", false, true));
            foreach (var g in info.Groups)
                if (groups.Contains(g)) metrics.Add(MetricSpec.GroupLoss(g));
        }
        return new TaskSpec(info.Name, info, paths, test, groups, metrics);
    }

    /// <summary>The task's label completions, the candidates of likelihood-ranked classification.</summary>
    public IReadOnlyList<string> LabelCompletions => Info.Labels.Select(l => l.Completion).ToList();
}
