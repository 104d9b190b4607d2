using System.Globalization;

namespace TransPeft.Experiments;

/// <summary>
/// How an adapter is trained on the old base: plain LoRA (both probabilities 0) or Trans-PEFT with FFN
/// knowledge masking (<see cref="PMask"/>) and/or cross-layer knowledge dropping (<see cref="PDrop"/>).
/// <see cref="Id"/> names its folders and stage markers ("plain", "drop0.1", "mask0.2-drop0.1").
/// </summary>
public sealed record AdapterVariant(double PMask, double PDrop)
{
    public static readonly AdapterVariant Plain = new(0, 0);

    public bool IsPlain => PMask == 0 && PDrop == 0;

    public string Id => IsPlain ? "plain"
        : string.Join("-", new[] { PMask > 0 ? "mask" + F(PMask) : null, PDrop > 0 ? "drop" + F(PDrop) : null }.Where(s => s is not null));

    /// <summary>For tables: "p_drop 0.1", "p_mask 0.2, p_drop 0.1".</summary>
    public string Label => IsPlain ? "plain LoRA"
        : string.Join(", ", new[] { PMask > 0 ? "p_mask " + F(PMask) : null, PDrop > 0 ? "p_drop " + F(PDrop) : null }.Where(s => s is not null));

    private static string F(double p) => p.ToString("0.###", CultureInfo.InvariantCulture);
}
