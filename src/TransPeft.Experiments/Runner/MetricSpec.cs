namespace TransPeft.Experiments;

/// <summary>
/// One number measured for every row of a task: accuracy of likelihood-ranked labels and the cross-entropy of
/// that decision (the gold label's share of the candidates' probability), or mean cross-entropy of the
/// completion tokens over all test records or one group of them. <see cref="IsPrimary"/> marks the number
/// the verdict is drawn from (one per task).
/// </summary>
public sealed record MetricSpec(string Key, string Title, bool HigherIsBetter, bool IsPrimary, string? Group = null)
{
    public const string Accuracy = "accuracy", DecisionLoss = "decision_loss", Loss = "loss";

    public static MetricSpec GroupLoss(string group) => new($"{Loss}[{group}]", $"completion loss, {group} words", false, false, group);

    /// <summary>"higher is better" / "lower is better", for tables.</summary>
    public string Direction => HigherIsBetter ? "higher is better" : "lower is better";

    /// <summary>Is b an improvement over a for this metric?</summary>
    public bool Improves(double a, double b) => HigherIsBetter ? b > a : b < a;
}
