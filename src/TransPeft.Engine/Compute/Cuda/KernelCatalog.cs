namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The kernels the CUDA backend loads and launches: the symbol name of each <see cref="KernelId"/> (every kernel is
/// <c>extern "C"</c>); the file and exact parameter list come from <see cref="KernelSignatures"/>, generated from the
/// sources' own declarations, so they cannot drift. Launches are checked against it (argument count and kinds).
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
        void K(KernelId id, string name)
        {
            if ((int)id != list.Count) throw new InvalidOperationException($"KernelCatalog is out of order at {id}");
            if (!KernelSignatures.ByName.TryGetValue(name, out var signature))
                throw new InvalidOperationException($"KernelCatalog names {name}, which kernels/*.cu does not define (regenerate KernelSignatures.g.cs)");
            list.Add(new KernelInfo(id, name, signature.File, signature.Parameters));
        }

        K(KernelId.CastBf16ToF32, "cast_bf16_to_f32");
        K(KernelId.CastF32ToBf16, "cast_f32_to_bf16");
        K(KernelId.AddBf16, "add_bf16");
        K(KernelId.MulBf16, "mul_bf16");
        K(KernelId.BiasAddBf16, "bias_add_bf16");
        K(KernelId.ColumnSumBf16, "column_sum_bf16");
        K(KernelId.ReduceSumF32, "reduce_sum_f32");
        K(KernelId.KvCacheWrite, "kv_cache_write");
        K(KernelId.EmbeddingForward, "embedding_forward");
        K(KernelId.EmbeddingBackward, "embedding_backward");
        K(KernelId.RmsNormForward, "rmsnorm_forward");
        K(KernelId.RmsNormResidualForward, "rmsnorm_residual_forward");
        K(KernelId.RmsNormBackward, "rmsnorm_backward");
        K(KernelId.RmsNormBackwardWeight, "rmsnorm_backward_weight");
        K(KernelId.RopeForward, "rope_forward");
        K(KernelId.RopeBackward, "rope_backward");
        K(KernelId.SwiGluForward, "swiglu_forward");
        K(KernelId.SwiGluBackward, "swiglu_backward");
        K(KernelId.LoraDropoutApply, "lora_dropout_apply");
        K(KernelId.LoraDropoutShrink, "lora_dropout_shrink");
        K(KernelId.CrossEntropyFusedBf16, "cross_entropy_fused_bf16");
        K(KernelId.CrossEntropyFusedF32, "cross_entropy_fused_f32");
        K(KernelId.ArgmaxRowsF32, "argmax_rows_f32");
        K(KernelId.AdamWStep, "adamw_step");
        K(KernelId.GlobalNormSquared, "global_norm_squared");
        K(KernelId.GlobalNormFinalize, "global_norm_finalize");
        K(KernelId.FlashAttentionForward, "flash_attention_forward");
        K(KernelId.FlashAttentionBackwardPreprocess, "flash_attention_backward_preprocess");
        K(KernelId.FlashAttentionBackwardDq, "flash_attention_backward_dq");
        K(KernelId.FlashAttentionBackwardDkDv, "flash_attention_backward_dkdv");
        K(KernelId.FlashAttentionForwardD64, "flash_attention_forward_d64");
        K(KernelId.FlashAttentionForwardD128, "flash_attention_forward_d128");
        K(KernelId.FlashAttentionBackwardDqD64, "flash_attention_backward_dq_d64");
        K(KernelId.FlashAttentionBackwardDqD128, "flash_attention_backward_dq_d128");
        K(KernelId.FlashAttentionBackwardDkDvD64, "flash_attention_backward_dkdv_d64");
        K(KernelId.FlashAttentionBackwardDkDvD128, "flash_attention_backward_dkdv_d128");

        K(KernelId.BgmvShrink, "bgmv_shrink");
        K(KernelId.BgmvExpand, "bgmv_expand");
        K(KernelId.SgmvShrink, "sgmv_shrink");
        K(KernelId.SgmvExpand, "sgmv_expand");
        K(KernelId.RopeRows, "rope_rows");
        K(KernelId.KvAppend, "kv_append");
        K(KernelId.DecodeAttention, "decode_attention");
        K(KernelId.LayerNormForward, "layernorm_forward");
        K(KernelId.LayerNormBackward, "layernorm_backward");
        K(KernelId.GeluForward, "gelu_forward");
        K(KernelId.GeluBackward, "gelu_backward");
        K(KernelId.MaskedAttentionForward, "masked_attention_forward");

        if (list.Count != Enum.GetValues<KernelId>().Length) throw new InvalidOperationException("KernelCatalog misses a KernelId");
        return list.ToArray();
    }
}
