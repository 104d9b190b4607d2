namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// What the forward of one decoder layer saves for the backward (bf16 unless noted): the input norm's output and
/// rstd (fp32), q and k after RoPE, v, the attention output and its logsumexp (fp32, [B, nh, T]), h = x + attn,
/// the post-attention norm's output and rstd, the SwiGLU pre-activations g and u (the activation itself is
/// recomputed in the backward), and t = drop(x)·Aᵀ of each LoRA module (<see cref="LoraT"/>, indexed by projection;
/// default where the projection has no module).
/// </summary>
internal sealed class LayerActivationLayout
{
    public required ArenaRegion N1 { get; init; }
    public required ArenaRegion Rstd1 { get; init; }
    public required ArenaRegion Q { get; init; }
    public required ArenaRegion K { get; init; }
    public required ArenaRegion V { get; init; }
    public required ArenaRegion Att { get; init; }
    public required ArenaRegion Lse { get; init; }
    public required ArenaRegion H { get; init; }
    public required ArenaRegion N2 { get; init; }
    public required ArenaRegion Rstd2 { get; init; }
    public required ArenaRegion G { get; init; }
    public required ArenaRegion U { get; init; }
    public required ArenaRegion[] LoraT { get; init; }
}
