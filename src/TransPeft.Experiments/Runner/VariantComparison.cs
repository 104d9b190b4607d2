using TransPeft.Engine.Evaluation;

namespace TransPeft.Experiments;

/// <summary>
/// One Trans-PEFT variant against the protocol's rows on one metric, all paired by seed:
/// <list type="bullet">
/// <item><see cref="GapRecovered"/>: (TP − Direct) / (Re-tune − Direct) of the means (1 = as good as re-tuning);</item>
/// <item><see cref="VsDirect"/>: TP transfer − Direct transfer (the verdict's comparison);</item>
/// <item><see cref="Retention"/>: TP on v2 − TP on v1 (what the TP adapter loses by the move);</item>
/// <item><see cref="RetentionVsPlain"/>: that retention − plain retention (Direct − FT_old);</item>
/// <item><see cref="VsRetune"/>: TP transfer − Re-tune.</item>
/// </list>
/// </summary>
public sealed record VariantComparison(AdapterVariant Variant, double GapRecovered, PairedComparison VsDirect,
    PairedComparison Retention, PairedComparison RetentionVsPlain, PairedComparison VsRetune, TransferOutcome Outcome);
