using static TransPeft.Engine.Compute.Cuda.ArgKind;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The kernels the CUDA backend loads and launches: symbol names (every kernel is <c>extern "C"</c>), the file
/// each lives in, and the exact parameter list of kernels/README.md. Launches are checked against it (argument
/// count and kinds), and tests check it against the sources, the README and the compiled cubins.
/// </summary>
internal static class KernelCatalog
{
    private static readonly KernelInfo[] s_kernels = Build();

    /// <summary>All kernels, indexed by <see cref="KernelId"/>.</summary>
    public static IReadOnlyList<KernelInfo> All => s_kernels;

    public static KernelInfo Get(KernelId id) => s_kernels[(int)id];

    /// <summary>The .cu files the backend compiles (each one NVRTC program).</summary>
    public static IEnumerable<string> Files => s_kernels.Select(k => k.File).Distinct();

    /// <summary>Throws when <paramref name="args"/> does not match the kernel's parameter list.</summary>
    public static void CheckArguments(KernelId id, ReadOnlySpan<KernelArgument> args)
    {
        var p = s_kernels[(int)id].Parameters;
        bool ok = p.Length == args.Length;
        for (int i = 0; ok && i < p.Length; i++) ok = p[i] == args[i].Kind;
        if (!ok) ThrowMismatch(id, args);
    }

    private static void ThrowMismatch(KernelId id, ReadOnlySpan<KernelArgument> args)
    {
        var kinds = new List<string>();
        foreach (var a in args) kinds.Add(a.Kind.ToString());
        throw new ArgumentException($"kernel {Get(id).Name} takes ({string.Join(", ", Get(id).Parameters)}), the launch passed ({string.Join(", ", kinds)})");
    }

    private static KernelInfo[] Build()
    {
        var list = new List<KernelInfo>();
        void K(KernelId id, string name, string file, params ArgKind[] parameters)
        {
            if ((int)id != list.Count) throw new InvalidOperationException($"KernelCatalog is out of order at {id}");
            list.Add(new KernelInfo(id, name, file, parameters));
        }

        const string ew = "elementwise.cu";
        K(KernelId.CastBf16ToF32, "cast_bf16_to_f32", ew, Ptr, Ptr, I64);
        K(KernelId.CastF32ToBf16, "cast_f32_to_bf16", ew, Ptr, Ptr, I64);
        K(KernelId.AddBf16, "add_bf16", ew, Ptr, Ptr, Ptr, I64);
        K(KernelId.MulBf16, "mul_bf16", ew, Ptr, Ptr, Ptr, I64);
        K(KernelId.BiasAddBf16, "bias_add_bf16", ew, Ptr, Ptr, I32, I32);
        K(KernelId.ColumnSumBf16, "column_sum_bf16", ew, Ptr, Ptr, I32, I32);
        K(KernelId.ScaleF32, "scale_f32", ew, Ptr, I64, F32, Ptr);
        K(KernelId.ReduceSumF32, "reduce_sum_f32", ew, Ptr, Ptr, I64, F32);
        K(KernelId.KvCacheWrite, "kv_cache_write", ew, Ptr, Ptr, I32, I32, I32, I32, I32);

        K(KernelId.EmbeddingForward, "embedding_forward", "embedding.cu", Ptr, Ptr, Ptr, I32, I32, I32);
        K(KernelId.EmbeddingBackward, "embedding_backward", "embedding.cu", Ptr, Ptr, Ptr, I32, I32, I32);

        const string rn = "rmsnorm.cu";
        K(KernelId.RmsNormForward, "rmsnorm_forward", rn, Ptr, Ptr, Ptr, Ptr, I32, I32, F32);
        K(KernelId.RmsNormResidualForward, "rmsnorm_residual_forward", rn, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, F32);
        K(KernelId.RmsNormBackward, "rmsnorm_backward", rn, Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, I32);
        K(KernelId.RmsNormBackwardWeight, "rmsnorm_backward_weight", rn, Ptr, Ptr, Ptr, Ptr, I32, I32);

        K(KernelId.RopeForward, "rope_forward", "rope.cu", Ptr, Ptr, I32, I32, I32, I32, I32);
        K(KernelId.RopeBackward, "rope_backward", "rope.cu", Ptr, Ptr, I32, I32, I32, I32, I32);

        K(KernelId.SwiGluForward, "swiglu_forward", "swiglu.cu", Ptr, Ptr, Ptr, I32, I32, F32, U64, U32, U32, U32);
        K(KernelId.SwiGluBackward, "swiglu_backward", "swiglu.cu", Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, F32, U64, U32, U32, U32);

        K(KernelId.LoraDropoutApply, "lora_dropout_apply", "lora.cu", Ptr, Ptr, I32, I32, F32, U64, U32, U32, U32, U32, I32);
        K(KernelId.LoraDropoutShrink, "lora_dropout_shrink", "lora.cu", Ptr, Ptr, Ptr, I32, I32, I32, F32, U64, U32, U32, U32, U32);

        const string ce = "cross_entropy.cu";
        K(KernelId.CrossEntropyFusedBf16, "cross_entropy_fused_bf16", ce, Ptr, Ptr, Ptr, I32, I32, F32);
        K(KernelId.CrossEntropyFusedF32, "cross_entropy_fused_f32", ce, Ptr, Ptr, Ptr, I32, I32, F32);
        K(KernelId.ArgmaxRowsBf16, "argmax_rows_bf16", ce, Ptr, Ptr, I32, I32);
        K(KernelId.ArgmaxRowsF32, "argmax_rows_f32", ce, Ptr, Ptr, I32, I32);

        const string opt = "optimizer.cu";
        K(KernelId.AdamWStep, "adamw_step", opt, Ptr, Ptr, Ptr, Ptr, Ptr, I64, F32, F32, F32, F32, F32, I32, Ptr);
        K(KernelId.SgdStep, "sgd_step", opt, Ptr, Ptr, Ptr, Ptr, I64, F32, F32, F32, I32, Ptr);
        K(KernelId.GlobalNormSquared, "global_norm_squared", opt, Ptr, Ptr, I64, I32);
        K(KernelId.GlobalNormFinalize, "global_norm_finalize", opt, Ptr, Ptr, Ptr, I32, F32);

        const string at = "attention.cu", mma = "attention_mma.cu";
        ArgKind[] fwd = [Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, I32, I32, I32, I32, I32, F32];
        ArgKind[] dq = [Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, I32, I32, I32, F32];
        ArgKind[] dkdv = [Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, I32, I32, I32, F32];
        K(KernelId.FlashAttentionForward, "flash_attention_forward", at, fwd);
        K(KernelId.FlashAttentionBackwardPreprocess, "flash_attention_backward_preprocess", at, Ptr, Ptr, Ptr, I32, I32, I32, I32);
        K(KernelId.FlashAttentionBackwardDq, "flash_attention_backward_dq", at, dq);
        K(KernelId.FlashAttentionBackwardDkDv, "flash_attention_backward_dkdv", at, dkdv);
        K(KernelId.FlashAttentionForwardD64, "flash_attention_forward_d64", mma, fwd);
        K(KernelId.FlashAttentionForwardD128, "flash_attention_forward_d128", mma, fwd);
        K(KernelId.FlashAttentionBackwardDqD64, "flash_attention_backward_dq_d64", mma, dq);
        K(KernelId.FlashAttentionBackwardDqD128, "flash_attention_backward_dq_d128", mma, dq);
        K(KernelId.FlashAttentionBackwardDkDvD64, "flash_attention_backward_dkdv_d64", mma, dkdv);
        K(KernelId.FlashAttentionBackwardDkDvD128, "flash_attention_backward_dkdv_d128", mma, dkdv);

        const string multi = "lora_multi.cu";
        K(KernelId.BgmvShrink, "bgmv_shrink", multi, Ptr, Ptr, Ptr, Ptr, I32, I32, I32);
        K(KernelId.BgmvExpand, "bgmv_expand", multi, Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, I32);
        K(KernelId.SgmvShrink, "sgmv_shrink", multi, Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, I32);
        K(KernelId.SgmvExpand, "sgmv_expand", multi, Ptr, Ptr, Ptr, Ptr, Ptr, Ptr, I32, I32, I32);

        if (list.Count != Enum.GetValues<KernelId>().Length) throw new InvalidOperationException("KernelCatalog misses a KernelId");
        return list.ToArray();
    }
}
