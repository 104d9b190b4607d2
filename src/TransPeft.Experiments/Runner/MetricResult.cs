using TransPeft.Engine.Evaluation;

namespace TransPeft.Experiments;

/// <summary>
/// A task's rows for one metric and the statistics between them: <see cref="Retention"/> is Direct − FT_old per
/// seed (the breakage of a plain adapter moved to v2), <see cref="Gap"/> is Re-tune − Direct (what there is to
/// recover), and one <see cref="VariantComparison"/> per Trans-PEFT variant.
/// </summary>
public sealed record MetricResult(MetricSpec Metric, IReadOnlyList<RowResult> Rows, PairedComparison Retention, PairedComparison Gap,
    IReadOnlyList<VariantComparison> TransPeft)
{
    public RowResult Row(RowKind kind, AdapterVariant? variant = null) =>
        Rows.First(r => r.Kind == kind && (variant is null || r.Variant == variant));
}
