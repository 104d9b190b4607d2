using TransPeft.Engine.Evaluation;

namespace TransPeft.Experiments;

/// <summary>One row of a task's table for one metric: the value of every seed, their mean and sample standard deviation.</summary>
public sealed record RowResult(RowKind Kind, AdapterVariant Variant, IReadOnlyList<int> Seeds, IReadOnlyList<double> Values)
{
    public double Mean => Values.Count == 0 ? double.NaN : Statistics.Mean(Values);
    public double StdDev => Statistics.StdDev(Values);

    public string Name => Kind switch
    {
        RowKind.FineTuneOld => "Fine-tune (old)",
        RowKind.DirectTransfer => "Direct transfer",
        RowKind.TransPeftTransfer => $"Trans-PEFT transfer ({Variant.Label})",
        RowKind.TransPeftOnOld => $"Trans-PEFT on old ({Variant.Label})",
        RowKind.RetuneNew => "Re-tune (new)",
        _ => Kind.ToString(),
    };

    /// <summary>The adapter behind the row, and the base it is evaluated on.</summary>
    public (string AdapterBase, string EvalBase) Bases => Kind switch
    {
        RowKind.FineTuneOld or RowKind.TransPeftOnOld => (AdapterKey.OldBase, AdapterKey.OldBase),
        RowKind.DirectTransfer or RowKind.TransPeftTransfer => (AdapterKey.OldBase, AdapterKey.NewBase),
        _ => (AdapterKey.NewBase, AdapterKey.NewBase),
    };
}
