namespace TransPeft.Engine.TransPeft;

/// <summary>
/// Masks and drops drawn from the engine's Philox stream (see <see cref="RandomStream"/>):
/// element (row, j) of layer l is masked when Uniform(TagFfnMask, l, row * I + j) &lt; pMask;
/// layer l is dropped when Uniform(TagLayerDrop, l, 0) &lt; pDrop.
/// </summary>
internal sealed class PhiloxFfnPerturbation(RandomStream stream, double pMask, double pDrop) : FfnPerturbation
{
    public RandomStream Stream { get; } = stream;
    public double PMask { get; } = pMask is >= 0 and < 1 ? pMask : throw new ArgumentOutOfRangeException(nameof(pMask), "p_mask must be in [0, 1)");
    public double PDrop { get; } = pDrop is >= 0 and < 1 ? pDrop : throw new ArgumentOutOfRangeException(nameof(pDrop), "p_drop must be in [0, 1)");

    public override bool IsDropped(int layer) =>
        PDrop > 0 && Stream.Uniform(RandomStream.TagLayerDrop, (uint)layer, 0) < (float)PDrop;

    public override bool HasMask => PMask > 0;

    public override void FillMask(int layer, int row0, int rows, int intermediate, Span<float> dst)
    {
        uint start = checked((uint)((long)row0 * intermediate));
        Stream.FillKeep(RandomStream.TagFfnMask, (uint)layer, start, dst[..(rows * intermediate)], (float)PMask, 1f);
    }
}
