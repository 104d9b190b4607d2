using System.Numerics.Tensors;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// The CPU reference backend: a Llama-family decoder's forward and hand-written backward in fp32, with
/// optional LoRA and Trans-PEFT FFN masking/dropping. Layer math (per row, see docs/ARCHITECTURE.md):
/// <code>
///   n1 = RMSNorm(x);  q,k,v = n1·Wᵀ (+b, +LoRA);  RoPE(q,k);  att = causal GQA attention
///   h  = x + o_proj(att)
///   x' = h                                   if the layer's FFN is dropped (Trans-PEFT)
///   x' = h + down(silu(gate(n2)) · up(n2) · mask),  n2 = RMSNorm(h)   otherwise
/// </code>
/// Gradients: with a LoRA adapter only its A/B get gradients (base weights frozen, no weight-gradient
/// GEMMs); with <c>fullFineTune</c> every base weight does.
/// </summary>
internal sealed unsafe class CpuTransformer : ITrainableModel, IInferenceModel
{
    public TransformerModel Model { get; }
    public LoraAdapter? Adapter { get; }
    public bool FullFineTune { get; }
    public ModelConfig Config => Model.Config;
    public IReadOnlyList<Parameter> TrainableParameters { get; }

    private readonly Rope<float> _rope;
    private CpuActivations? _acts;
    private readonly int _maxRank;
    private readonly bool _inferenceOnly;

    /// <summary>A forward-only view for evaluation, generation and analysis: it leaves every gradient buffer
    /// as it is, so it can share weights with a model that a trainer is updating.</summary>
    public static CpuTransformer ForInference(TransformerModel model, LoraAdapter? adapter = null, int maxPositions = 0) =>
        new(model, adapter, fullFineTune: false, maxPositions, manageGradients: false, recompute: false);

    /// <param name="recompute">Keep only each layer's input for the backward and recompute the rest of the layer's
    /// activations there (<see cref="TrainingOptions.Recompute"/>): bit-identical gradients, less memory.</param>
    public CpuTransformer(TransformerModel model, LoraAdapter? adapter = null, bool fullFineTune = false, int maxPositions = 0, bool recompute = false)
        : this(model, adapter, fullFineTune, maxPositions, manageGradients: true, recompute) { }

    /// <summary>Activation recomputation (see the constructor).</summary>
    public bool Recompute { get; }

    /// <summary>Bytes the last training-shape forward kept for the backward (0 before any).</summary>
    internal long StoredActivationBytes => _acts?.StoredBytes ?? 0;

    private CpuTransformer(TransformerModel model, LoraAdapter? adapter, bool fullFineTune, int maxPositions, bool manageGradients, bool recompute)
    {
        Recompute = recompute;
        ModelRules.CheckAdapter(model.Config, adapter);
        Model = model; Adapter = adapter; FullFineTune = fullFineTune;
        _rope = new Rope<float>(model.Config, maxPositions > 0 ? maxPositions : model.Config.MaxPositionEmbeddings);
        _maxRank = adapter?.Modules().Max(m => m.Rank) ?? 0;
        _inferenceOnly = !manageGradients;
        TrainableParameters = manageGradients ? ModelRules.TrainableParameters(model, adapter, fullFineTune) : [];
    }

    /// <summary>A base weight's gradient buffer when this model trains the base, else null: in LoRA mode the base is
    /// frozen whatever buffers another model object on the same weights may have switched on.</summary>
    private float[]? BaseGrad(Parameter p) => FullFineTune ? p.Grad : null;

    public int MaxPositions => _rope.MaxPositions;

    private CpuActivations Acts(int b, int t)
    {
        if (_acts is null || _acts.B != b || _acts.T != t) _acts = new CpuActivations(Config, b, t, _maxRank, Recompute);
        return _acts;
    }

    public void ZeroGrad()
    {
        foreach (var p in TrainableParameters) p.ZeroGrad();
    }

    private LoraModule? Lora(int layer, Projection p) => Adapter?[layer, p];

    // ---------------------------------------------------------------- forward

    /// <summary>Runs the layers and the final norm over ids [B,T]; activations stay in <see cref="_acts"/>.</summary>
    private CpuActivations ForwardBody(int[] ids, int b, int t, in StepContext ctx)
    {
        ModelRules.CheckBatch(Config, MaxPositions, ids.Length, b, t);
        ModelRules.CheckTokens(Config, ids);
        return ForwardBody(Acts(b, t), ids, ctx, null, 0);
    }

    /// <summary>Embedding, the layers and the final norm into <paramref name="a"/> (shape [a.B, a.T]); with a KV cache the
    /// rows sit at positions pos0 .. pos0+T-1 and attend over the cache.</summary>
    private CpuActivations ForwardBody(CpuActivations a, int[] ids, in StepContext ctx, Inference.KvCache? cache, int pos0)
    {
        var c = Config;
        int n = a.N, h = c.HiddenSize;
        Embedding.Forward(a.Xs[0], ids, Model.Embed.Data, n, h, c.VocabSize);
        for (int l = 0; l < c.NumLayers; l++) LayerForward(l, a, ctx, cache, pos0);
        RmsNorm.Forward(a.FinalNormOut, a.FinalRstd, a.Xs[c.NumLayers], Model.FinalNorm.Data, n, h, c.RmsNormEps);
        return a;
    }

    private void LayerForward(int l, CpuActivations a, in StepContext ctx, Inference.KvCache? cache, int pos0)
    {
        var c = Config;
        var w = Model.Layers[l];
        var la = a.Layers[l];
        int n = a.N, h = c.HiddenSize;
        float[] x = a.Xs[l], xNext = a.Xs[l + 1];

        RmsNorm.Forward(la.N1, la.Rstd1, x, w.InputNorm.Data, n, h, c.RmsNormEps);
        ProjForward(la.Q, la.N1, n, l, Projection.Q, la, a, ctx);
        ProjForward(la.K, la.N1, n, l, Projection.K, la, a, ctx);
        ProjForward(la.V, la.N1, n, l, Projection.V, la, a, ctx);
        _rope.Forward(la.Q, a.B, a.T, c.NumHeads, pos0);
        _rope.Forward(la.K, a.B, a.T, c.NumKvHeads, pos0);
        if (cache is null)
            Attention.Forward(la.Att, la.Lse, la.Q, la.K, la.V, a.B, a.T, a.T, 0, c.NumHeads, c.NumKvHeads, c.HeadDim);
        else
        {
            // Incremental decoding: append this step's keys/values to the cache, attend over everything cached.
            int kvd = c.KvDim;
            for (int bi = 0; bi < a.B; bi++)
            {
                la.K.AsSpan(bi * a.T * kvd, a.T * kvd).CopyTo(cache.K[l].AsSpan((bi * cache.Capacity + pos0) * kvd));
                la.V.AsSpan(bi * a.T * kvd, a.T * kvd).CopyTo(cache.V[l].AsSpan((bi * cache.Capacity + pos0) * kvd));
            }
            Attention.Forward(la.Att, la.Lse, la.Q, cache.K[l], cache.V[l], a.B, a.T, cache.Capacity, pos0, c.NumHeads, c.NumKvHeads, c.HeadDim);
        }
        ProjForward(a.Proj, la.Att, n, l, Projection.O, la, a, ctx);
        TensorPrimitives.Add(x, a.Proj, la.H);
        _observer?.OnAttention(l, a.Proj, la.H);

        la.Dropped = ctx.Perturbation?.IsDropped(l) ?? false;
        if (la.Dropped)
        {
            // Cross-layer knowledge dropping: the post-attention norm and the MLP are skipped entirely.
            la.H.AsSpan().CopyTo(xNext);
            return;
        }
        RmsNorm.Forward(la.N2, la.Rstd2, la.H, w.PostNorm.Data, n, h, c.RmsNormEps);
        ProjForward(la.G, la.N2, n, l, Projection.Gate, la, a, ctx);
        ProjForward(la.U, la.N2, n, l, Projection.Up, la, a, ctx);
        float[]? mask = FillMask(l, a, ctx);
        SwiGlu.Forward(la.A, la.G, la.U, mask, n * c.IntermediateSize);
        ProjForward(a.Proj, la.A, n, l, Projection.Down, la, a, ctx);
        _observer?.OnFfn(l, la.A, a.Proj);
        TensorPrimitives.Add(la.H, a.Proj, xNext);
    }

    /// <summary>The Trans-PEFT keep mask of layer l for this micro-batch, or null when nothing is masked.</summary>
    private float[]? FillMask(int l, CpuActivations a, in StepContext ctx)
    {
        if (ctx.Perturbation is not { HasMask: true } p) return null;
        p.FillMask(l, 0, a.N, Config.IntermediateSize, a.Mask.AsSpan(0, a.N * Config.IntermediateSize));
        return a.Mask;
    }

    private void ProjForward(float[] y, float[] x, int n, int l, Projection p, LayerActivations la, CpuActivations a, in StepContext ctx)
    {
        var w = Model.Layers[l];
        var lora = Lora(l, p);
        CpuLinear.Forward(y, x, n, w.Weight(p), w.Bias(p), lora, la.LoraT[(int)p], a.ScratchIn, ctx);
    }

    /// <summary>Logits [B*T, V] of the model (adapter applied, no perturbation unless one is given).</summary>
    public float[] ForwardLogits(int[] ids, int b, int t, FfnPerturbation? perturbation = null)
    {
        var ctx = new StepContext(default, perturbation, Training: false);
        var a = ForwardBody(ids, b, t, ctx);
        var logits = new float[b * t * Config.VocabSize];
        Head(logits, a.FinalNormOut, b * t);
        NonFiniteValueException.ThrowIfAny(logits, "model output", "logits");
        return logits;
    }

    /// <summary>logits[N, V] = x[N, C]·headᵀ.</summary>
    private void Head(Span<float> logits, ReadOnlySpan<float> x, int n)
    {
        int h = Config.HiddenSize, v = Config.VocabSize;
        fixed (float* pl = logits, px = x, ph = Model.Head.Data)
            Gemm.MatmulNT(pl, px, ph, n, h, v, accumulate: false, 1f);
    }

    /// <summary>Set only for the duration of <see cref="ForwardObserved"/>.</summary>
    private ILayerObserver? _observer;

    /// <summary>
    /// The evaluation forward over ids [B, T] (adapter applied, no perturbation) that shows every layer's
    /// sub-layer outputs to <paramref name="observer"/> as they are computed (update analysis). No logits.
    /// </summary>
    internal void ForwardObserved(int[] ids, int b, int t, ILayerObserver observer)
    {
        _observer = observer;
        try { ForwardBody(ids, b, t, StepContext.Eval); }
        finally { _observer = null; }
    }

    // ---------------------------------------------------------------- inference (IInferenceModel)

    public Inference.KvCache CreateCache(int batchSize, int capacity) => new(Config, batchSize, capacity);

    public void Prefill(Inference.KvCache cache, ReadOnlySpan<int> ids, int b, int t, Span<float> lastLogits) =>
        Extend(cache, ids, b, t, lastLogits);

    public void Decode(Inference.KvCache cache, ReadOnlySpan<int> ids, Span<float> logits) =>
        Extend(cache, ids, cache.BatchSize, 1, logits);

    /// <summary>
    /// Incremental forward with a caller-owned KV cache: runs ids [B, T] at positions cache.Length .. cache.Length+T-1
    /// through the same layer recipe as training (<see cref="LayerForward"/>), appends their keys/values, and writes
    /// the logits of the LAST position of each row into <paramref name="lastLogits"/> [B, V]. Every buffer lives in
    /// the cache's scratch, sized on first use, so a decode step (T = 1) allocates no arrays. Gives the same logits
    /// as a full recompute of the whole prefix (tested).
    /// </summary>
    private void Extend(Inference.KvCache cache, ReadOnlySpan<int> ids, int b, int t, Span<float> lastLogits)
    {
        var c = Config;
        if (b != cache.BatchSize) throw new ArgumentException($"batch {b} does not match the cache's {cache.BatchSize}");
        int pos0 = cache.Length;
        ModelRules.CheckBatch(c, MaxPositions, ids.Length, b, t, pos0);
        ModelRules.CheckTokens(c, ids);
        if (pos0 + t > cache.Capacity) throw new ArgumentException($"cache holds {cache.Capacity} positions; {pos0} used, {t} more requested");
        if (lastLogits.Length != b * c.VocabSize) throw new ArgumentException($"expected room for {b}x{c.VocabSize} logits, got {lastLogits.Length}");
        var s = cache.Scratch as CpuDecodeScratch ?? new CpuDecodeScratch();
        cache.Scratch = s;
        var a = s.Activations(c, b, t, _maxRank);
        ids.CopyTo(s.Ids(b * t));
        ForwardBody(a, s.IdsBuffer, StepContext.Eval, cache, pos0);
        cache.Length = pos0 + t;
        // The final norm ran on every row; the head only on the last position of each row.
        int h = c.HiddenSize;
        var last = s.Last(b * h);
        for (int bi = 0; bi < b; bi++) a.FinalNormOut.AsSpan((bi * t + t - 1) * h, h).CopyTo(last.AsSpan(bi * h));
        Head(lastLogits, last.AsSpan(0, b * h), b);
        NonFiniteValueException.ThrowIfAny(lastLogits, "model output", "logits");
    }

    /// <summary>Prefill into a fresh logits array (tests and callers that want an array).</summary>
    public float[] ForwardCached(Inference.KvCache cache, int[] ids, int b, int t)
    {
        var logits = new float[b * Config.VocabSize];
        Extend(cache, ids, b, t, logits);
        return logits;
    }

    /// <summary>
    /// Full forward over ids [B, T] with no cache: logits [B*T, V] and/or the final-norm hidden states [B*T, C]
    /// (either span may be empty to skip it). <paramref name="scratch"/> is the caller's (one per context), so
    /// concurrent callers on one model share nothing mutable.
    /// </summary>
    public void Forward(ReadOnlySpan<int> ids, int b, int t, Span<float> logits, Span<float> hidden, ref object? scratch)
    {
        var c = Config;
        ModelRules.CheckBatch(c, MaxPositions, ids.Length, b, t);
        ModelRules.CheckTokens(c, ids);
        int n = b * t;
        if (!logits.IsEmpty && logits.Length != n * c.VocabSize) throw new ArgumentException($"expected room for {n}x{c.VocabSize} logits, got {logits.Length}");
        if (!hidden.IsEmpty && hidden.Length != n * c.HiddenSize) throw new ArgumentException($"expected room for {n}x{c.HiddenSize} hidden values, got {hidden.Length}");
        var s = scratch as CpuDecodeScratch ?? new CpuDecodeScratch();
        scratch = s;
        var a = s.Activations(c, b, t, _maxRank);
        ids.CopyTo(s.Ids(n));
        ForwardBody(a, s.IdsBuffer, StepContext.Eval, null, 0);
        if (!hidden.IsEmpty) a.FinalNormOut.AsSpan(0, n * c.HiddenSize).CopyTo(hidden);
        if (!logits.IsEmpty) Head(logits, a.FinalNormOut, n);
    }

    /// <summary>Shifted targets: target[b,t] = labels[b,t+1], and -100 at the last position of each row.</summary>
    internal static int[] ShiftedTargets(TokenBatch batch)
    {
        int b = batch.BatchSize, t = batch.SeqLen;
        var targets = new int[b * t];
        for (int i = 0; i < b; i++)
        {
            for (int j = 0; j < t - 1; j++) targets[i * t + j] = batch.Labels[i * t + j + 1];
            targets[i * t + t - 1] = TokenBatch.IgnoreIndex;
        }
        return targets;
    }

    public (double LossSum, int Counted) Loss(TokenBatch batch)
    {
        var a = ForwardBody(batch.InputIds, batch.BatchSize, batch.SeqLen, StepContext.Eval);
        var (sum, counted) = HeadLoss(a, ShiftedTargets(batch), null, null, LogitsChunk(ref _logitsChunk, a.N));
        return (NonFiniteValueException.ThrowIfNotFinite(sum, "model output", "the loss"), counted);
    }

    /// <summary><see cref="Loss(TokenBatch)"/> with the caller's working memory (concurrent callers share nothing mutable).</summary>
    public (double LossSum, int Counted) Loss(TokenBatch batch, ref object? scratch)
    {
        int b = batch.BatchSize, t = batch.SeqLen;
        ModelRules.CheckBatch(Config, MaxPositions, batch.InputIds.Length, b, t);
        ModelRules.CheckTokens(Config, batch.InputIds);
        var s = scratch as CpuDecodeScratch ?? new CpuDecodeScratch();
        scratch = s;
        var a = ForwardBody(s.Activations(Config, b, t, _maxRank), batch.InputIds, StepContext.Eval, null, 0);
        var (sum, counted) = HeadLoss(a, ShiftedTargets(batch), null, null, LogitsChunk(ref s.LogitsChunk, a.N));
        return (NonFiniteValueException.ThrowIfNotFinite(sum, "model output", "the loss"), counted);
    }

    public (double LossSum, int Counted) ForwardBackward(TokenBatch batch, float lossScale, in StepContext context)
    {
        if (_inferenceOnly) throw new InvalidOperationException("this CpuTransformer was made with ForInference and computes no gradients");
        var a = ForwardBody(batch.InputIds, batch.BatchSize, batch.SeqLen, context);
        var targets = ShiftedTargets(batch);
        Array.Clear(a.DN);
        var result = HeadLoss(a, targets, lossScale, a.DN, LogitsChunk(ref _logitsChunk, a.N));
        Backward(a, batch.InputIds, context);
        return result;
    }

    /// <summary>
    /// Rows per LM-head chunk: as many as fit a 16M-value logits buffer (64 MB), at least 128. Bigger chunks
    /// amortise packing the [V, C] head weight, which every chunk's GEMMs repack.
    /// </summary>
    private int HeadChunkRows => Math.Max(128, (1 << 24) / Config.VocabSize);
    private float[]? _logitsChunk;

    /// <summary>The logits buffer of one head chunk for <paramref name="n"/> rows, (re)made in <paramref name="slot"/>.</summary>
    private float[] LogitsChunk(ref float[]? slot, int n)
    {
        int need = Math.Min(HeadChunkRows, n) * Config.VocabSize;
        if (slot is null || slot.Length < need) slot = new float[need];
        return slot;
    }

    /// <summary>
    /// LM head + cross-entropy in row chunks: logits of a chunk are computed, turned into dlogits in place,
    /// and immediately multiplied back (dxf += dlogits·H, dH += dlogitsᵀ·xf), so the full [N, V] matrix never exists.
    /// </summary>
    private (double, int) HeadLoss(CpuActivations a, int[] targets, float? lossScale, float[]? dxf, float[] logits)
    {
        int n = a.N, h = Config.HiddenSize, v = Config.VocabSize;
        var head = Model.Head;
        int chunkRows = Math.Min(HeadChunkRows, n);
        double total = 0;
        int counted = 0;
        for (int r0 = 0; r0 < n; r0 += chunkRows)
        {
            int rows = Math.Min(chunkRows, n - r0);
            int chunkCounted = 0;
            for (int r = 0; r < rows; r++) if (targets[r0 + r] != TokenBatch.IgnoreIndex) chunkCounted++;
            if (chunkCounted == 0) continue;
            counted += chunkCounted;
            fixed (float* pl = logits, px = a.FinalNormOut, ph = head.Data)
                Gemm.MatmulNT(pl, px + (long)r0 * h, ph, rows, h, v, accumulate: false, 1f);
            total += CrossEntropy.ForwardBackward(logits, 0, targets, r0, rows, v, lossScale);
            if (dxf is null) continue;
            fixed (float* pl = logits, px = a.FinalNormOut, ph = head.Data, pd = dxf)
            {
                Gemm.MatmulNN(pd + (long)r0 * h, pl, ph, rows, v, h, accumulate: true, 1f);
                if (BaseGrad(head) is { } gh)
                    fixed (float* pg = gh) Gemm.MatmulTN(pg, pl, px + (long)r0 * h, rows, v, h, accumulate: true, 1f);
            }
        }
        return (total, counted);
    }

    // ---------------------------------------------------------------- backward

    /// <summary>Reverse pass. On entry a.DN holds d loss / d final-norm output.</summary>
    private void Backward(CpuActivations a, int[] ids, in StepContext ctx)
    {
        var c = Config;
        int n = a.N, h = c.HiddenSize;
        var dx = a.DX;
        Array.Clear(dx);
        RmsNorm.Backward(dx, BaseGrad(Model.FinalNorm), a.DN, a.Xs[c.NumLayers], Model.FinalNorm.Data, a.FinalRstd, n, h);
        for (int l = c.NumLayers - 1; l >= 0; l--)
        {
            // Recomputation: the shared buffers hold the last layer's activations; refill them for every other layer by
            // running its forward again from xs[l]. The same code on the same inputs and random stream gives the same
            // bits (it also rewrites xs[l+1] with the values it already holds), so the gradients are bit-identical.
            if (a.Recompute && l < c.NumLayers - 1) LayerForward(l, a, ctx, null, 0);
            LayerBackward(l, a, ctx);
        }
        if (BaseGrad(Model.Embed) is { } ge) Embedding.Backward(ge, dx, ids, n, h);
    }

    /// <summary>On entry a.DX = d loss / d xs[l+1]; on exit a.DX = d loss / d xs[l].</summary>
    private void LayerBackward(int l, CpuActivations a, in StepContext ctx)
    {
        var c = Config;
        var w = Model.Layers[l];
        var la = a.Layers[l];
        int n = a.N, h = c.HiddenSize, inter = c.IntermediateSize;
        var dx = a.DX;

        if (!la.Dropped)
        {
            // x' = h + down(a): d/da = dx'·W_down; then SwiGLU (mask regenerated), gate/up, post-attention norm.
            Array.Clear(a.DA);
            ProjBackward(a.DA, dx, la.A, n, l, Projection.Down, la, a, ctx);
            float[]? mask = FillMask(l, a, ctx);
            SwiGlu.Backward(a.DG, a.DU, a.DA, la.G, la.U, mask, n * inter);
            Array.Clear(a.DN);
            ProjBackward(a.DN, a.DG, la.N2, n, l, Projection.Gate, la, a, ctx);
            ProjBackward(a.DN, a.DU, la.N2, n, l, Projection.Up, la, a, ctx);
            RmsNorm.Backward(dx, BaseGrad(w.PostNorm), a.DN, la.H, w.PostNorm.Data, la.Rstd2, n, h);
        }
        // Now dx = d loss / d h. h = x + o_proj(att).
        Array.Clear(a.DAtt);
        ProjBackward(a.DAtt, dx, la.Att, n, l, Projection.O, la, a, ctx);
        Attention.Backward(a.DQ, a.DK, a.DV, a.DAtt, la.Q, la.K, la.V, la.Att, la.Lse, a.B, a.T, c.NumHeads, c.NumKvHeads, c.HeadDim);
        _rope.Backward(a.DQ, a.B, a.T, c.NumHeads, 0);
        _rope.Backward(a.DK, a.B, a.T, c.NumKvHeads, 0);
        // Layer 0's input gradient only feeds the embedding and the first norm's weight: skip it when neither learns.
        float[]? dn = l > 0 || BaseGrad(Model.Embed) is not null || BaseGrad(w.InputNorm) is not null ? a.DN : null;
        if (dn is not null) Array.Clear(dn);
        ProjBackward(dn, a.DQ, la.N1, n, l, Projection.Q, la, a, ctx);
        ProjBackward(dn, a.DK, la.N1, n, l, Projection.K, la, a, ctx);
        ProjBackward(dn, a.DV, la.N1, n, l, Projection.V, la, a, ctx);
        if (dn is not null) RmsNorm.Backward(dx, BaseGrad(w.InputNorm), dn, a.Xs[l], w.InputNorm.Data, la.Rstd1, n, h);
    }

    private void ProjBackward(float[]? dIn, float[] dOut, float[] x, int n, int l, Projection p, LayerActivations la, CpuActivations a, in StepContext ctx)
    {
        var w = Model.Layers[l];
        CpuLinear.Backward(dIn, dOut, x, n, w.Weight(p), w.Bias(p), Lora(l, p), la.LoraT[(int)p], a.ScratchIn, a.ScratchR, ctx, FullFineTune);
    }
}
