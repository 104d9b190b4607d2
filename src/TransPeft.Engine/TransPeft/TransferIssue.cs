namespace TransPeft.Engine.TransPeft;

public enum TransferSeverity { Error, Warning }

/// <summary>
/// One reason an adapter does not (or may not) fit a new base. <see cref="Subject"/> is the module
/// (model.layers.3.mlp.down_proj), config field (intermediate_size) or file the issue is about;
/// <see cref="AdapterSide"/> and <see cref="BaseSide"/> hold the two values that differ, where there are two.
/// </summary>
public sealed record TransferIssue(TransferSeverity Severity, string Subject, string Problem, string? AdapterSide = null, string? BaseSide = null)
{
    public bool IsError => Severity == TransferSeverity.Error;

    public override string ToString() => $"{(IsError ? "error" : "warning")}: {Subject}: {Problem}";
}
