using System.Text;

namespace TransPeft.Engine.TransPeft;

/// <summary>
/// Everything <see cref="AdapterTransfer.Check"/> found when comparing an adapter with a new base: every
/// incompatibility (errors) and every difference that does not stop the transfer but may change results
/// (warnings). The adapter transfers when there is no error.
/// </summary>
public sealed record TransferReport
{
    public required string AdapterDir { get; init; }
    public required string NewBaseDir { get; init; }
    /// <summary>The adapter's base_model_name_or_path (the base it was trained on), when recorded.</summary>
    public string? OldBase { get; init; }
    /// <summary>The config.json of the old base that was compared, when one was found.</summary>
    public string? OldBaseConfigPath { get; init; }
    public int AdapterModules { get; init; }
    public int? Rank { get; init; }
    /// <summary>How the adapter was trained (null: plain LoRA, or unreadable settings, which is an issue).</summary>
    public TransPeftSettings? TransPeft { get; init; }
    public IReadOnlyList<TransferIssue> Issues { get; init; } = [];

    public IEnumerable<TransferIssue> Errors => Issues.Where(i => i.IsError);
    public IEnumerable<TransferIssue> Warnings => Issues.Where(i => !i.IsError);
    public bool IsCompatible => !Issues.Any(i => i.IsError);

    /// <summary>A readable report: one summary line, then one line per issue.</summary>
    public string Describe()
    {
        var sb = new StringBuilder();
        int errors = Errors.Count(), warnings = Warnings.Count();
        string kind = TransPeft is { } tp ? $"Trans-PEFT p_mask {tp.PMask}, p_drop {tp.PDrop}" : "plain LoRA";
        sb.Append($"adapter {AdapterDir} ({AdapterModules} modules");
        if (Rank is int r) sb.Append($", r={r}");
        sb.Append($", {kind}; trained on {OldBase ?? "an unrecorded base"}) -> new base {NewBaseDir}: ");
        sb.Append(IsCompatible ? "compatible" : "INCOMPATIBLE");
        sb.Append($" ({errors} error{(errors == 1 ? "" : "s")}, {warnings} warning{(warnings == 1 ? "" : "s")})");
        foreach (var i in Issues.OrderBy(i => i.Severity)) sb.Append('\n').Append("  ").Append(i);
        return sb.ToString();
    }
}
