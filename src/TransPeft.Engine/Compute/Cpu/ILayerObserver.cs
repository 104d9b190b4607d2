namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Sees each decoder layer's sub-layer outputs during <see cref="CpuTransformer.ForwardObserved"/> (analysis
/// only; training and inference never set one). The spans point into reused buffers: they are valid only for
/// the duration of the call, so an observer that needs them later must copy them.
/// </summary>
internal interface ILayerObserver
{
    /// <summary>After the attention sub-layer of <paramref name="layer"/>: the o_proj output [N, C] and
    /// h = x + o_proj [N, C], the residual stream the FFN adds to.</summary>
    void OnAttention(int layer, ReadOnlySpan<float> attentionOutput, ReadOnlySpan<float> h);

    /// <summary>After the FFN sub-layer of <paramref name="layer"/>: the SwiGLU activation a [N, I] (down_proj's
    /// input, the "neurons") and the down_proj output [N, C]. Not called for a dropped layer.</summary>
    void OnFfn(int layer, ReadOnlySpan<float> activation, ReadOnlySpan<float> ffnOutput);
}
