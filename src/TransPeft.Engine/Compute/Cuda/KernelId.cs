namespace TransPeft.Engine.Compute.Cuda;

/// <summary>Every kernel of kernels/*.cu, by the file that defines it. <see cref="KernelCatalog"/> maps each to its
/// symbol name; file and parameter list come from <see cref="KernelSignatures"/>, generated from the sources. A test
/// checks that every kernel in the sources has an id here (nothing defined goes unused).</summary>
internal enum KernelId
{
    // elementwise.cu
    CastBf16ToF32,
    CastF32ToBf16,
    AddBf16,
    MulBf16,
    BiasAddBf16,
    ColumnSumBf16,
    ReduceSumF32,
    KvCacheWrite,
    // embedding.cu
    EmbeddingForward,
    EmbeddingBackward,
    // rmsnorm.cu
    RmsNormForward,
    RmsNormResidualForward,
    RmsNormBackward,
    RmsNormBackwardWeight,
    // rope.cu
    RopeForward,
    RopeBackward,
    // swiglu.cu
    SwiGluForward,
    SwiGluBackward,
    // lora.cu
    LoraDropoutApply,
    LoraDropoutShrink,
    // cross_entropy.cu
    CrossEntropyFusedBf16,
    CrossEntropyFusedF32,
    ArgmaxRowsF32,
    // optimizer.cu
    AdamWStep,
    GlobalNormSquared,
    GlobalNormFinalize,
    // attention.cu
    FlashAttentionForward,
    FlashAttentionBackwardPreprocess,
    FlashAttentionBackwardDq,
    FlashAttentionBackwardDkDv,
    // attention_mma.cu
    FlashAttentionForwardD64,
    FlashAttentionForwardD128,
    FlashAttentionBackwardDqD64,
    FlashAttentionBackwardDqD128,
    FlashAttentionBackwardDkDvD64,
    FlashAttentionBackwardDkDvD128,
    // lora_multi.cu
    BgmvShrink,
    BgmvExpand,
    SgmvShrink,
    SgmvExpand,
    // decode.cu (the KV-cached decode step: per-row slot and position read from device buffers)
    RopeRows,
    KvAppend,
    DecodeAttention,
    // bert.cu (the encoder's kernels: compiled, loaded and emulator-checked; no CUDA encoder launches them yet)
    LayerNormForward,
    LayerNormBackward,
    GeluForward,
    GeluBackward,
    MaskedAttentionForward,
}
