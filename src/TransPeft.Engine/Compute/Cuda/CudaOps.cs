using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using static TransPeft.Engine.Compute.Cuda.KernelArgument;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The GPU ops, one method per op with explicit shapes in the signature, mirroring Compute/Cpu (llm.c style):
/// each picks its launch shape from <see cref="LaunchPlanner"/>, packs typed arguments in the kernel's order
/// (kernels/README.md) and queues the kernel on the device's stream. Every op is one NVTX range. Pointers are
/// device addresses; bf16 unless the parameter name says fp32 (rstd, lse, losses, gradients of trainable
/// parameters). Nothing here allocates or synchronizes.
/// </summary>
internal sealed class CudaOps(IComputeDevice device)
{
    public IComputeDevice Device { get; } = device;
    public LaunchPlanner Plan { get; } = new(device.MultiprocessorCount);

    private void Run(KernelId id, LaunchShape shape, ReadOnlySpan<KernelArgument> args) => Device.Launch(id, shape, args);

    // ------------------------------------------------------------------ GEMMs (cuBLAS), named as Compute/Cpu/Gemm

    /// <summary>out[N,OC] (+)= alpha · x[N,C] · W[OC,C]ᵀ — a linear layer's forward (and the LM head).</summary>
    public void MatmulNT(DevicePtr outp, DevicePtr x, DevicePtr w, int n, int c, int oc, bool accumulate, float alpha = 1f,
        CudaDataType outType = CudaDataType.R16BF) =>
        Device.Gemm(false, true, n, oc, c, alpha, x, c, w, c, accumulate ? 1f : 0f, outp, oc, CudaDataType.R16BF, outType);

    /// <summary>dx[N,C] (+)= alpha · dy[N,OC] · W[OC,C] — a linear layer's input gradient.</summary>
    public void MatmulNN(DevicePtr dx, DevicePtr dy, DevicePtr w, int n, int oc, int c, bool accumulate, float alpha = 1f,
        CudaDataType outType = CudaDataType.R16BF) =>
        Device.Gemm(false, false, n, c, oc, alpha, dy, oc, w, c, accumulate ? 1f : 0f, dx, c, CudaDataType.R16BF, outType);

    /// <summary>dW[OC,C] (+)= alpha · dy[N,OC]ᵀ · x[N,C] — a weight gradient, fp32 output by default.</summary>
    public void MatmulTN(DevicePtr dw, DevicePtr dy, DevicePtr x, int n, int oc, int c, bool accumulate, float alpha = 1f,
        CudaDataType outType = CudaDataType.R32F) =>
        Device.Gemm(true, false, oc, c, n, alpha, dy, oc, x, c, accumulate ? 1f : 0f, dw, c, CudaDataType.R16BF, outType);

    // ------------------------------------------------------------------ embedding.cu

    /// <summary>out[N,C] = wte[V,C][ids[N]].</summary>
    public void EmbeddingForward(DevicePtr outp, DevicePtr ids, DevicePtr wte, int n, int c, int v)
    {
        Device.PushRange("embedding_forward");
        Run(KernelId.EmbeddingForward, LaunchPlanner.EmbeddingForward(n), [outp, ids, wte, I32(n), I32(c), I32(v)]);
        Device.PopRange();
    }

    /// <summary>dwte[V,C] (fp32) += scatter of dout[N,C] by ids.</summary>
    public void EmbeddingBackward(DevicePtr dwte, DevicePtr dout, DevicePtr ids, int n, int c, int v)
    {
        Device.PushRange("embedding_backward");
        Run(KernelId.EmbeddingBackward, LaunchPlanner.EmbeddingBackward(v), [dwte, dout, ids, I32(n), I32(c), I32(v)]);
        Device.PopRange();
    }

    // ------------------------------------------------------------------ rmsnorm.cu

    /// <summary>out[N,C] = RMSNorm(inp) · weight; rstd[N] fp32 (nullable).</summary>
    public void RmsNormForward(DevicePtr outp, DevicePtr rstd, DevicePtr inp, DevicePtr weight, int n, int c, float eps)
    {
        Device.PushRange("rmsnorm_forward");
        Run(KernelId.RmsNormForward, LaunchPlanner.WarpPerRow(n), [outp, rstd, inp, weight, I32(n), I32(c), F32(eps)]);
        Device.PopRange();
    }

    /// <summary>residualOut = bf16(x + y); out = RMSNorm(residualOut) · weight; rstd fp32.</summary>
    public void RmsNormResidualForward(DevicePtr residualOut, DevicePtr outp, DevicePtr rstd, DevicePtr x, DevicePtr y, DevicePtr weight, int n, int c, float eps)
    {
        Device.PushRange("rmsnorm_residual_forward");
        Run(KernelId.RmsNormResidualForward, LaunchPlanner.WarpPerRow(n), [residualOut, outp, rstd, x, y, weight, I32(n), I32(c), F32(eps)]);
        Device.PopRange();
    }

    /// <summary>dinp[N,C] (+)= d/dinp of Σ dout·RMSNorm(inp)·weight.</summary>
    public void RmsNormBackward(DevicePtr dinp, DevicePtr dout, DevicePtr inp, DevicePtr weight, DevicePtr rstd, int n, int c, bool accumulate)
    {
        Device.PushRange("rmsnorm_backward");
        Run(KernelId.RmsNormBackward, LaunchPlanner.WarpPerRow(n), [dinp, dout, inp, weight, rstd, I32(n), I32(c), I32(accumulate ? 1 : 0)]);
        Device.PopRange();
    }

    /// <summary>dweight[C] (fp32) += Σ_n dout·inp·rstd.</summary>
    public void RmsNormBackwardWeight(DevicePtr dweight, DevicePtr dout, DevicePtr inp, DevicePtr rstd, int n, int c)
    {
        Device.PushRange("rmsnorm_backward_weight");
        Run(KernelId.RmsNormBackwardWeight, LaunchPlanner.ColumnReduction(c), [dweight, dout, inp, rstd, I32(n), I32(c)]);
        Device.PopRange();
    }

    // ------------------------------------------------------------------ rope.cu

    /// <summary>Rotates x[B,T,heads,d] in place by position · inv_freq (fp64 [d/2]).</summary>
    public void RopeForward(DevicePtr x, DevicePtr invFreq, int b, int t, int heads, int d, int posOffset)
    {
        Device.PushRange("rope_forward");
        Run(KernelId.RopeForward, Plan.GridStride((long)b * t * heads * (d / 2)), [x, invFreq, I32(b), I32(t), I32(heads), I32(d), I32(posOffset)]);
        Device.PopRange();
    }

    public void RopeBackward(DevicePtr dx, DevicePtr invFreq, int b, int t, int heads, int d, int posOffset)
    {
        Device.PushRange("rope_backward");
        Run(KernelId.RopeBackward, Plan.GridStride((long)b * t * heads * (d / 2)), [dx, invFreq, I32(b), I32(t), I32(heads), I32(d), I32(posOffset)]);
        Device.PopRange();
    }

    // ------------------------------------------------------------------ attention.cu, attention_mma.cu

    /// <summary>Causal GQA flash attention: out[B,Tq,nh,d], lse[B,nh,Tq] fp32 from q[B,Tq,nh,d], k/v[B,Tcap,nkv,d].</summary>
    public void AttentionForward(DevicePtr outp, DevicePtr lse, DevicePtr q, DevicePtr k, DevicePtr v,
        int b, int tq, int tkv, int tcap, int nh, int nkv, int d, float scale)
    {
        var variant = LaunchPlanner.AttentionFor(d);
        var id = variant switch { AttentionVariant.D64 => KernelId.FlashAttentionForwardD64, AttentionVariant.D128 => KernelId.FlashAttentionForwardD128, _ => KernelId.FlashAttentionForward };
        Device.PushRange("attention_forward");
        Run(id, LaunchPlanner.AttentionForward(variant, b, tq, nh),
            [outp, lse, q, k, v, I32(b), I32(tq), I32(tkv), I32(tcap), I32(nh), I32(nkv), I32(d), F32(scale)]);
        Device.PopRange();
    }

    /// <summary>dq, dk, dv (overwritten) of causal attention with T queries and keys; dsum fp32 [B,nh,T] is scratch.</summary>
    public void AttentionBackward(DevicePtr dq, DevicePtr dk, DevicePtr dv, DevicePtr dsum, DevicePtr dout, DevicePtr q, DevicePtr k, DevicePtr v,
        DevicePtr outp, DevicePtr lse, int b, int t, int nh, int nkv, int d, float scale)
    {
        var variant = LaunchPlanner.AttentionFor(d);
        var (dqId, dkdvId) = variant switch
        {
            AttentionVariant.D64 => (KernelId.FlashAttentionBackwardDqD64, KernelId.FlashAttentionBackwardDkDvD64),
            AttentionVariant.D128 => (KernelId.FlashAttentionBackwardDqD128, KernelId.FlashAttentionBackwardDkDvD128),
            _ => (KernelId.FlashAttentionBackwardDq, KernelId.FlashAttentionBackwardDkDv),
        };
        Device.PushRange("attention_backward");
        Run(KernelId.FlashAttentionBackwardPreprocess, LaunchPlanner.AttentionPreprocess(b, t, nh), [dsum, outp, dout, I32(b), I32(t), I32(nh), I32(d)]);
        Run(dqId, LaunchPlanner.AttentionBackwardDq(variant, b, t, nh),
            [dq, q, k, v, dout, lse, dsum, I32(b), I32(t), I32(nh), I32(nkv), I32(d), F32(scale)]);
        Run(dkdvId, LaunchPlanner.AttentionBackwardDkDv(variant, b, t, nkv),
            [dk, dv, q, k, v, dout, lse, dsum, I32(b), I32(t), I32(nh), I32(nkv), I32(d), F32(scale)]);
        Device.PopRange();
    }

    // ------------------------------------------------------------------ swiglu.cu

    /// <summary>a[N,I] = silu(gate)·up·keep, keep drawn with probability <c>step.PMask</c> of masking from the step's
    /// mask stream (tag FFN mask, lane = layer), both read from the <see cref="StepParams"/> at <paramref name="step"/>
    /// in device memory; a null <paramref name="step"/> (or PMask = 0) draws nothing.</summary>
    public void SwiGluForward(DevicePtr a, DevicePtr gate, DevicePtr up, int n, int inter, DevicePtr step, int layer)
    {
        Device.PushRange("swiglu_forward");
        Run(KernelId.SwiGluForward, Plan.GridStride(((long)n * inter + 3) / 4), [a, gate, up, I32(n), I32(inter), step, U32((uint)layer)]);
        Device.PopRange();
    }

    /// <summary>dgate, dup [N,I] (overwritten) from da and the saved pre-activations; the mask is regenerated.</summary>
    public void SwiGluBackward(DevicePtr dgate, DevicePtr dup, DevicePtr da, DevicePtr gate, DevicePtr up, int n, int inter, DevicePtr step, int layer)
    {
        Device.PushRange("swiglu_backward");
        Run(KernelId.SwiGluBackward, Plan.GridStride(((long)n * inter + 3) / 4), [dgate, dup, da, gate, up, I32(n), I32(inter), step, U32((uint)layer)]);
        Device.PopRange();
    }

    // ------------------------------------------------------------------ lora.cu

    /// <summary>t[N,r] = bf16(drop(x)[N,in] · A[r,in]ᵀ) on tensor cores; p = 0: no dropout. The dropout stream is the
    /// step's (<see cref="StepParams"/> at <paramref name="step"/>, device memory); p &gt; 0 needs one.</summary>
    public void LoraShrink(DevicePtr t, DevicePtr x, DevicePtr a, int n, int inDim, int rank, float p, DevicePtr step, int layer, int projection)
    {
        RequireStepForDropout(p, step);
        Device.PushRange("lora_shrink");
        Run(KernelId.LoraDropoutShrink, LaunchPlanner.LoraShrink(n, rank), [t, x, a, I32(n), I32(inDim), I32(rank), F32(p), step, U32((uint)layer), U32((uint)projection)]);
        Device.PopRange();
    }

    /// <summary>out[N,in] = (accumulate ? out : 0) + x·keep/(1-p), keep drawn for element row·in + col from the step's
    /// dropout stream.</summary>
    public void LoraDropoutApply(DevicePtr outp, DevicePtr x, int n, int inDim, float p, DevicePtr step, int layer, int projection, bool accumulate)
    {
        RequireStepForDropout(p, step);
        Device.PushRange("lora_dropout_apply");
        Run(KernelId.LoraDropoutApply, Plan.GridStride(((long)n * inDim + 3) / 4),
            [outp, x, I32(n), I32(inDim), F32(p), step, U32((uint)layer), U32((uint)projection), I32(accumulate ? 1 : 0)]);
        Device.PopRange();
    }

    /// <summary>The kernels ignore p without a StepParams (no stream to draw from): a caller asking for dropout without
    /// one is a bug, not a request for none.</summary>
    private static void RequireStepForDropout(float p, DevicePtr step)
    {
        if (p > 0 && step.IsNull) throw new ArgumentException($"LoRA dropout p = {p} needs the step's StepParams (its random stream) in device memory");
    }

    // ------------------------------------------------------------------ lora_multi.cu (many adapters, inference)

    /// <summary>t[N,rmax] (fp32) = x[N,in]·A[slot(n)]ᵀ per row, A[s] = <paramref name="a"/> + s·<paramref name="slotStride"/>
    /// elements ([rmax, in] bf16); rows of slot −1 are not written. Decode batches.</summary>
    public void BgmvShrink(DevicePtr t, DevicePtr x, DevicePtr a, DevicePtr rowSlot, int n, int inDim, int rmax, long slotStride)
    {
        Device.PushRange("bgmv_shrink");
        Run(KernelId.BgmvShrink, LaunchPlanner.BlockPerRow(n, 128), [t, x, a, rowSlot, I32(n), I32(inDim), I32(rmax), I64(slotStride)]);
        Device.PopRange();
    }

    /// <summary>y[N,out] += scaling[s·scaleStride]·t·B[s]ᵀ per row (bf16 y), B[s] = <paramref name="b"/> + s·<paramref name="slotStride"/>
    /// elements ([out, rmax] bf16); rows of slot −1 keep y.</summary>
    public void BgmvExpand(DevicePtr y, DevicePtr t, DevicePtr b, DevicePtr scaling, DevicePtr rowSlot, int n, int outDim, int rmax, long slotStride, int scaleStride)
    {
        Device.PushRange("bgmv_expand");
        Run(KernelId.BgmvExpand, Plan.GridStride((long)n * outDim), [y, t, b, scaling, rowSlot, I32(n), I32(outDim), I32(rmax), I64(slotStride), I32(scaleStride)]);
        Device.PopRange();
    }

    /// <summary>As <see cref="BgmvShrink"/> over segments (seg_start [nseg+1], seg_slot [nseg], i32 on the device);
    /// <paramref name="longestSegment"/> sizes the grid.</summary>
    public void SgmvShrink(DevicePtr t, DevicePtr x, DevicePtr a, DevicePtr segStart, DevicePtr segSlot, int segments, int longestSegment, int inDim, int rmax, long slotStride)
    {
        Device.PushRange("sgmv_shrink");
        Run(KernelId.SgmvShrink, LaunchPlanner.SgmvShrink(segments, longestSegment), [t, x, a, segStart, segSlot, I32(segments), I32(inDim), I32(rmax), I64(slotStride)]);
        Device.PopRange();
    }

    /// <summary>As <see cref="BgmvExpand"/> over segments.</summary>
    public void SgmvExpand(DevicePtr y, DevicePtr t, DevicePtr b, DevicePtr scaling, DevicePtr segStart, DevicePtr segSlot, int segments, int longestSegment,
        int outDim, int rmax, long slotStride, int scaleStride)
    {
        Device.PushRange("sgmv_expand");
        Run(KernelId.SgmvExpand, LaunchPlanner.SgmvExpand(segments, longestSegment, outDim),
            [y, t, b, scaling, segStart, segSlot, I32(segments), I32(outDim), I32(rmax), I64(slotStride), I32(scaleStride)]);
        Device.PopRange();
    }

    // ------------------------------------------------------------------ decode.cu (per-row slot and position from device buffers)

    /// <summary>Rotates x[N,heads,d] in place, row n by pos[n] (i32 on the device) · inv_freq (fp64 [d/2]).</summary>
    public void RopeRows(DevicePtr x, DevicePtr invFreq, DevicePtr pos, int n, int heads, int d)
    {
        Device.PushRange("rope_rows");
        Run(KernelId.RopeRows, Plan.GridStride((long)n * heads * (d / 2)), [x, invFreq, pos, I32(n), I32(heads), I32(d)]);
        Device.PopRange();
    }

    /// <summary>kCache/vCache[slot[n], pos[n], :] = k/v[n, :], caches [S, cap, row] bf16 (one layer), row = nkv·d.</summary>
    public void KvAppend(DevicePtr kCache, DevicePtr vCache, DevicePtr k, DevicePtr v, DevicePtr slot, DevicePtr pos, int n, int cap, int row)
    {
        Device.PushRange("kv_append");
        Run(KernelId.KvAppend, Plan.GridStride((long)n * row), [kCache, vCache, k, v, slot, pos, I32(n), I32(cap), I32(row)]);
        Device.PopRange();
    }

    /// <summary>out[N,nh,d] = attention of one query per row over keys 0..pos[n] of cache slot slot[n] (GQA).</summary>
    public void DecodeAttention(DevicePtr outp, DevicePtr q, DevicePtr kCache, DevicePtr vCache, DevicePtr slot, DevicePtr pos,
        int n, int cap, int nh, int nkv, int d, float scale)
    {
        Device.PushRange("decode_attention");
        Run(KernelId.DecodeAttention, LaunchPlanner.DecodeAttention(n, nh), [outp, q, kCache, vCache, slot, pos, I32(n), I32(cap), I32(nh), I32(nkv), I32(d), F32(scale)]);
        Device.PopRange();
    }

    /// <summary>cache[b, pos + t, :] = src[b, t, :], cache [B, Tcap, row], src [B, Tq, row] bf16 (a prefill's keys or values).</summary>
    public void KvCacheWrite(DevicePtr cache, DevicePtr src, int b, int tq, int tcap, int pos, int row)
    {
        Device.PushRange("kv_cache_write");
        Run(KernelId.KvCacheWrite, Plan.GridStride((long)b * tq * row), [cache, src, I32(b), I32(tq), I32(tcap), I32(pos), I32(row)]);
        Device.PopRange();
    }

    // ------------------------------------------------------------------ elementwise.cu

    /// <summary>out = bf16(a + b) over n elements (out may alias a or b).</summary>
    public void Add(DevicePtr outp, DevicePtr a, DevicePtr b, long n)
    {
        Device.PushRange("add");
        Run(KernelId.AddBf16, Plan.GridStride((n + 7) / 8), [outp, a, b, I64(n)]);
        Device.PopRange();
    }

    /// <summary>out = bf16(a · b) over n elements (an explicit 0/1 mask).</summary>
    public void Multiply(DevicePtr outp, DevicePtr a, DevicePtr b, long n)
    {
        Device.PushRange("mul");
        Run(KernelId.MulBf16, Plan.GridStride((n + 7) / 8), [outp, a, b, I64(n)]);
        Device.PopRange();
    }

    /// <summary>y[rows, cols] += bias[cols].</summary>
    public void BiasAdd(DevicePtr y, DevicePtr bias, int rows, int cols)
    {
        Device.PushRange("bias_add");
        Run(KernelId.BiasAddBf16, Plan.GridStride((long)rows * cols), [y, bias, I32(rows), I32(cols)]);
        Device.PopRange();
    }

    /// <summary>dst[cols] (fp32) += column sums of src[rows, cols]: a bias gradient.</summary>
    public void ColumnSum(DevicePtr dst, DevicePtr src, int rows, int cols)
    {
        Device.PushRange("bias_backward");
        Run(KernelId.ColumnSumBf16, LaunchPlanner.ColumnReduction(cols), [dst, src, I32(rows), I32(cols)]);
        Device.PopRange();
    }

    public void CastF32ToBf16(DevicePtr outp, DevicePtr inp, long n)
    {
        Run(KernelId.CastF32ToBf16, Plan.GridStride((n + 7) / 8), [outp, inp, I64(n)]);
    }

    public void CastBf16ToF32(DevicePtr outp, DevicePtr inp, long n)
    {
        Run(KernelId.CastBf16ToF32, Plan.GridStride((n + 7) / 8), [outp, inp, I64(n)]);
    }

    /// <summary>out[0] = scale · Σ inp[0..n) (fp32, one block).</summary>
    public void ReduceSum(DevicePtr outp, DevicePtr inp, long n, float scale)
    {
        Run(KernelId.ReduceSumF32, LaunchPlanner.SingleBlock, [outp, inp, I64(n), F32(scale)]);
    }

    // ------------------------------------------------------------------ cross_entropy.cu

    /// <summary>loss[N] (fp32) = CE of each row; logits[N,V] (bf16) become scale·(softmax − onehot) in place, scale =
    /// <c>LossScale</c> of the <see cref="StepParams"/> at <paramref name="step"/> (device memory; null: 1).</summary>
    public void CrossEntropyBf16(DevicePtr logits, DevicePtr targets, DevicePtr loss, int n, int v, DevicePtr step)
    {
        Device.PushRange("cross_entropy");
        Run(KernelId.CrossEntropyFusedBf16, LaunchPlanner.PerRowSoftmax(n, v), [logits, targets, loss, I32(n), I32(v), step]);
        Device.PopRange();
    }

    /// <summary>As <see cref="CrossEntropyBf16"/> on fp32 logits.</summary>
    public void CrossEntropyF32(DevicePtr logits, DevicePtr targets, DevicePtr loss, int n, int v, DevicePtr step)
    {
        Device.PushRange("cross_entropy");
        Run(KernelId.CrossEntropyFusedF32, LaunchPlanner.PerRowSoftmax(n, v), [logits, targets, loss, I32(n), I32(v), step]);
        Device.PopRange();
    }

    /// <summary>out[N] (int32) = argmax of each row of fp32 logits[N,V] (lowest index on ties).</summary>
    public void ArgmaxF32(DevicePtr outp, DevicePtr logits, int n, int v)
    {
        Run(KernelId.ArgmaxRowsF32, LaunchPlanner.PerRowSoftmax(n, v), [outp, logits, I32(n), I32(v)]);
    }

    // ------------------------------------------------------------------ optimizer.cu

    /// <summary>One AdamW update of n fp32 master weights (and their bf16 copy), gradients scaled by *gradScale.</summary>
    public void AdamWStep(DevicePtr param, DevicePtr paramBf16, DevicePtr grad, DevicePtr m, DevicePtr v, long n,
        float lr, float beta1, float beta2, float eps, float weightDecay, int step, DevicePtr gradScale)
    {
        Device.PushRange("adamw_step");
        Run(KernelId.AdamWStep, Plan.GridStride(n),
            [param, paramBf16, grad, m, v, I64(n), F32(lr), F32(beta1), F32(beta2), F32(eps), F32(weightDecay), I32(step), gradScale]);
        Device.PopRange();
    }

    /// <summary>partial[G] (+)= per-block sums of x² (fixed grid: deterministic).</summary>
    public void GlobalNormSquared(DevicePtr partial, DevicePtr x, long n, bool accumulate)
    {
        Run(KernelId.GlobalNormSquared, Plan.GlobalNormSquared, [partial, x, I64(n), I32(accumulate ? 1 : 0)]);
    }

    /// <summary>norm[0] = sqrt(Σ partial); clipScale[0] = maxNorm / (norm + 1e-6) when clipping applies, else 1.</summary>
    public void GlobalNormFinalize(DevicePtr norm, DevicePtr clipScale, DevicePtr partial, int count, float maxNorm)
    {
        Run(KernelId.GlobalNormFinalize, LaunchPlanner.SingleBlock, [norm, clipScale, partial, I32(count), F32(maxNorm)]);
    }
}
