namespace TransPeft.Engine.Compute.Cuda;

/// <summary>Every kernel of kernels/*.cu, by the file that defines it. <see cref="KernelCatalog"/> maps each to its
/// symbol name and parameter list; a test checks the list against the sources and kernels/README.md.</summary>
internal enum KernelId
{
    // elementwise.cu
    CastBf16ToF32,
    CastF32ToBf16,
    AddBf16,
    MulBf16,
    BiasAddBf16,
    ColumnSumBf16,
    ScaleF32,
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
    ArgmaxRowsBf16,
    ArgmaxRowsF32,
    // optimizer.cu
    AdamWStep,
    SgdStep,
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
}
