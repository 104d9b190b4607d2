using System.Text.RegularExpressions;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Lora;

public enum LoraInit { KaimingUniform, Gaussian }

/// <summary>
/// LoRA hyper-parameters and target selection, following PEFT: <see cref="TargetModules"/> holds exact
/// module names or name suffixes ("q_proj" matches "model.layers.0.self_attn.q_proj"), the single
/// entry "all-linear" (every projection, never the LM head), or <see cref="TargetRegex"/> a regex
/// that must match the full module name.
/// </summary>
public sealed record LoraConfig
{
    public int R { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    public double Dropout { get; init; }
    public bool UseRsLora { get; init; }
    public IReadOnlyList<string> TargetModules { get; init; } = ["q_proj", "v_proj"];
    public string? TargetRegex { get; init; }
    public LoraInit Init { get; init; } = LoraInit.KaimingUniform;

    /// <summary>alpha / r, or alpha / sqrt(r) with rsLoRA.</summary>
    public double Scaling => UseRsLora ? Alpha / Math.Sqrt(R) : Alpha / R;

    public void Validate()
    {
        if (R <= 0) throw new ArgumentException($"LoRA rank r must be positive, got {R}");
        if (Alpha <= 0) throw new ArgumentException($"lora_alpha must be positive, got {Alpha}");
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"lora_dropout must be in [0, 1), got {Dropout}");
        if (TargetRegex is null && TargetModules.Count == 0) throw new ArgumentException("LoRA needs target modules (names, suffixes, all-linear) or a regex");
    }

    /// <summary>Does this config adapt the projection <paramref name="p"/> of layer <paramref name="layer"/>?</summary>
    public bool Targets(int layer, Projection p)
    {
        string full = p.FullName(layer);
        if (TargetRegex is not null) return Regex.IsMatch(full, $"^(?:{TargetRegex})$");
        foreach (var t in TargetModules)
            if (Matches(t, full)) return true;
        return false;
    }

    private static bool Matches(string target, string fullName) =>
        target == "all-linear" || fullName == target || fullName.EndsWith("." + target, StringComparison.Ordinal);

    /// <summary>
    /// The targets that name no projection of a <paramref name="numLayers"/>-layer model (the regex, when it matches
    /// none). PEFT refuses such a config ("Target modules ... not found in the base model"); so do we, instead of
    /// carrying a name that means nothing through training and transfer.
    /// </summary>
    public IReadOnlyList<string> UnmatchedTargets(int numLayers)
    {
        var names = Enumerable.Range(0, numLayers).SelectMany(l => ProjectionNames.All.Select(p => p.FullName(l))).ToList();
        if (TargetRegex is not null)
            return names.Any(n => Regex.IsMatch(n, $"^(?:{TargetRegex})$")) ? [] : [TargetRegex];
        return TargetModules.Where(t => !names.Any(n => Matches(t, n))).ToList();
    }
}
