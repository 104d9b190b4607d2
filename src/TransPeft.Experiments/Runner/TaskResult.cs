namespace TransPeft.Experiments;

/// <summary>Every metric of one task.</summary>
public sealed record TaskResult(string Name, string Kind, IReadOnlyList<MetricResult> Metrics)
{
    public MetricResult Primary => Metrics.Single(m => m.Metric.IsPrimary);
}
