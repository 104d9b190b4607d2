namespace TransPeft.Engine.TransPeft;

/// <summary>Masks and drop flags given as arrays (tests, golden fixtures): masks[layer] is [B*T, I] of 0/1.</summary>
internal sealed class ExplicitFfnPerturbation(float[][]? masks, bool[] dropped) : FfnPerturbation
{
    public override bool IsDropped(int layer) => dropped[layer];
    public override bool HasMask => masks is not null;

    public override void FillMask(int layer, int row0, int rows, int intermediate, Span<float> dst) =>
        masks![layer].AsSpan(row0 * intermediate, rows * intermediate).CopyTo(dst);
}
