namespace TransPeft.Engine.TransPeft;

/// <summary>An adapter does not fit the base it was asked to move to. The message lists every error.</summary>
public sealed class AdapterTransferException(TransferReport report) : InvalidOperationException(report.Describe())
{
    public TransferReport Report { get; } = report;
}
