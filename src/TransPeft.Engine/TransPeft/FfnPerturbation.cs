namespace TransPeft.Engine.TransPeft;

/// <summary>
/// Trans-PEFT's training-time perturbation of the FFN for one micro-batch (see docs/TRANS-PEFT.md):
/// a layer may be dropped (post-attention norm + MLP skipped), and the SwiGLU activation
/// a[b,t,j] of a kept layer is multiplied by a 0/1 mask (no rescaling). Forward and backward ask the
/// same questions and get the same answers, so nothing is stored.
/// </summary>
internal abstract class FfnPerturbation
{
    /// <summary>True when the whole FFN sub-layer of <paramref name="layer"/> is skipped.</summary>
    public abstract bool IsDropped(int layer);

    /// <summary>False when no element is ever masked (then <see cref="FillMask"/> is never called).</summary>
    public abstract bool HasMask { get; }

    /// <summary>Writes the 0/1 keep mask of layer <paramref name="layer"/> for rows [row0, row0 + rows) of the
    /// flattened [B*T, I] activation into <paramref name="dst"/> (length rows * I).</summary>
    public abstract void FillMask(int layer, int row0, int rows, int intermediate, Span<float> dst);
}
