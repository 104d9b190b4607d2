using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// Where one host <see cref="Parameter"/> lives in the parameter arena: always a bf16 copy (what the kernels and
/// GEMMs read); for a trainable parameter also an fp32 master copy and an fp32 gradient, at element
/// <see cref="TrainableIndex"/> of the master and gradient blocks (the bf16 copy sits at the same index of the
/// trainable bf16 block, so one cast kernel refreshes every bf16 copy at once).
/// </summary>
internal sealed class DeviceParameter(Parameter host, ArenaRegion bf16, long trainableIndex, bool shared = false)
{
    public Parameter Host { get; } = host;

    /// <summary>The bf16 copy (byte offset into the model's arena, or into the shared base when <see cref="Shared"/>).</summary>
    public ArenaRegion Bf16 { get; } = bf16;

    /// <summary>A frozen base tensor read from the session's <see cref="DeviceBaseWeights"/> (not in this model's arena).</summary>
    public bool Shared { get; } = shared;

    /// <summary>Element offset in the master/gradient blocks, or -1 for a frozen parameter.</summary>
    public long TrainableIndex { get; } = trainableIndex;

    public bool Trainable => TrainableIndex >= 0;
    public int Length => Host.Length;

    public override string ToString() => $"{Host.Name} [{string.Join(", ", Host.Shape)}]{(Trainable ? $" trainable @{TrainableIndex}" : Shared ? " shared" : "")}";
}
