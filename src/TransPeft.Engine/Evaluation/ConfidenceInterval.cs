namespace TransPeft.Engine.Evaluation;

/// <summary>A two-sided confidence interval [Low, High] at <see cref="Level"/> (0.95 = 95%).</summary>
public readonly record struct ConfidenceInterval(double Low, double High, double Level)
{
    public bool Contains(double x) => x >= Low && x <= High;
    public override string ToString() => $"[{Low:G4}, {High:G4}] ({Level:P0})";
}
