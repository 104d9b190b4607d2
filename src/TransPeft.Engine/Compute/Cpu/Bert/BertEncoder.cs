using System.Numerics;
using System.Numerics.Tensors;
using TransPeft.Engine.Model.Bert;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Compute.Cpu.Bert;

/// <summary>
/// The BERT encoder on the CPU, forward and hand-written backward, generic over fp32 (production) and fp64
/// (finite-difference checks). Shapes: a padded batch of B sequences of T tokens, N = B·T rows of H = hidden.
///
///   x₀ = LN(word[ids] + pos[0..T) + type[types])
///   per layer (post-LN, Devlin et al.):
///     s₁ = x + AttnOut(Attention(Q(x), K(x), V(x); padding mask)),   h = LN₁(s₁)
///     s₂ = h + Out(mask ∘ gelu(Inter(h))),                            x' = LN₂(s₂)
///
/// Trans-PEFT on an encoder: the GELU intermediate is masked elementwise (no rescaling, as in the paper), and a
/// dropped layer skips its FFN sub-layer, leaving s₂ = h: the block's output LayerNorm still runs over the residual,
/// so the next layer sees the normalised scale it was trained on (dropping the LayerNorm too would feed it a
/// differently-scaled stream). Masks are regenerated from the Philox stream in the backward, never stored.
///
/// One instance holds the activations of its last forward for one backward; it is not thread-safe.
/// </summary>
internal sealed class BertEncoder<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    private sealed class LayerActs
    {
        public T[] X = [], Q = [], K = [], V = [], Probs = [], Ctx = [], S1 = [], H = [], U = [], G = [], S2 = [];
        public T[] Ln1Mean = [], Ln1Rstd = [], Ln2Mean = [], Ln2Rstd = [];
        public readonly Dictionary<BertLinear<T>, T[]> LoraT = [];
        public bool Dropped;
    }

    private readonly BertParams<T> _p;
    private LayerActs[] _acts = [];
    private T[] _emb = [], _embMean = [], _embRstd = [], _out = [];
    private T[] _dx = [], _dS = [], _dH = [], _dCtx = [], _dQ = [], _dK = [], _dV = [], _dG = [];
    private int[] _ids = [], _types = [], _valid = [];
    private int _b, _t;
    private FfnPerturbation? _perturbation;

    public BertEncoder(BertParams<T> p) => _p = p;

    public BertConfig Config => _p.Config;

    /// <summary>
    /// Runs the encoder: <paramref name="ids"/> [B*T] padded per row, <paramref name="validLength"/>[B] real tokens
    /// per row (the rest is padding, masked as keys), token types all 0 when <paramref name="types"/> is null.
    /// Returns last_hidden_state [B*T, H] (owned by this encoder until the next forward).
    /// </summary>
    public T[] Forward(int[] ids, int[]? types, int[] validLength, int b, int t, FfnPerturbation? perturbation = null)
    {
        var c = _p.Config;
        int h = c.HiddenSize, inter = c.IntermediateSize, n = b * t;
        if (ids.Length < n || validLength.Length < b) throw new ArgumentException($"ids needs {n} entries and validLength {b}");
        if (t > c.MaxPositionEmbeddings) throw new ArgumentException($"sequence length {t} exceeds max_position_embeddings {c.MaxPositionEmbeddings}");
        for (int i = 0; i < b; i++)
            if (validLength[i] < 1 || validLength[i] > t) throw new ArgumentException($"validLength[{i}] = {validLength[i]}: expected 1..{t}");
        for (int i = 0; i < n; i++)
            if ((uint)ids[i] >= (uint)c.VocabSize) throw new ArgumentException($"token id {ids[i]} at {i} is outside the vocabulary (size {c.VocabSize})");
        _b = b; _t = t; _perturbation = perturbation;
        _ids = ids; _valid = validLength;
        _types = types ?? new int[n];
        Ensure(n);

        // Embeddings: word + position + token type, then LayerNorm.
        var word = _p.WordEmbeddings.Data; var pos = _p.PositionEmbeddings.Data; var typ = _p.TokenTypeEmbeddings.Data;
        CpuParallel.For(n, row =>
        {
            var e = _emb.AsSpan(row * h, h);
            TensorPrimitives.Add<T>(word.AsSpan(_ids[row] * h, h), pos.AsSpan(row % t * h, h), e);
            TensorPrimitives.Add<T>(e, typ.AsSpan(_types[row] * h, h), e);
        }, parallel: (long)n * h > 65_536);
        var x = _acts.Length > 0 ? _acts[0].X : _out;
        LayerNorm.Forward(x, _embMean, _embRstd, _emb, _p.EmbeddingLnWeight.Data, _p.EmbeddingLnBias.Data, n, h, c.LayerNormEps);

        for (int l = 0; l < c.NumLayers; l++)
        {
            var a = _acts[l];
            var lp = _p.Layers[l];
            var next = l + 1 < c.NumLayers ? _acts[l + 1].X : _out;
            BertLinearOps.Forward(a.Q, a.X, n, lp.Query, a.LoraT.GetValueOrDefault(lp.Query));
            BertLinearOps.Forward(a.K, a.X, n, lp.Key, a.LoraT.GetValueOrDefault(lp.Key));
            BertLinearOps.Forward(a.V, a.X, n, lp.Value, a.LoraT.GetValueOrDefault(lp.Value));
            MaskedAttention.Forward(a.Ctx, a.Probs, a.Q, a.K, a.V, validLength, b, t, c.NumHeads, c.HeadDim);
            BertLinearOps.Forward(a.S1, a.Ctx, n, lp.AttentionOutput, a.LoraT.GetValueOrDefault(lp.AttentionOutput));
            TensorPrimitives.Add<T>(a.S1.AsSpan(0, n * h), a.X.AsSpan(0, n * h), a.S1.AsSpan(0, n * h));
            LayerNorm.Forward(a.H, a.Ln1Mean, a.Ln1Rstd, a.S1, lp.AttentionLnWeight.Data, lp.AttentionLnBias.Data, n, h, c.LayerNormEps);

            a.Dropped = perturbation?.IsDropped(l) == true;
            if (a.Dropped)
                Array.Copy(a.H, a.S2, n * h);
            else
            {
                BertLinearOps.Forward(a.U, a.H, n, lp.Intermediate, a.LoraT.GetValueOrDefault(lp.Intermediate));
                CpuParallel.For(n, row => Gelu.Forward(a.G.AsSpan(row * inter, inter), a.U.AsSpan(row * inter, inter)), parallel: n > 1);
                ApplyMask(a.G, l, n, inter);
                BertLinearOps.Forward(a.S2, a.G, n, lp.Output, a.LoraT.GetValueOrDefault(lp.Output));
                TensorPrimitives.Add<T>(a.S2.AsSpan(0, n * h), a.H.AsSpan(0, n * h), a.S2.AsSpan(0, n * h));
            }
            LayerNorm.Forward(next, a.Ln2Mean, a.Ln2Rstd, a.S2, lp.OutputLnWeight.Data, lp.OutputLnBias.Data, n, h, c.LayerNormEps);
        }
        return _out;
    }

    /// <summary>
    /// Back-propagates dHidden [B*T, H] (the gradient of last_hidden_state) through the last forward, accumulating
    /// into every tensor whose Grad is enabled (LoRA A/B in fine-tuning; everything in the gradient checks).
    /// </summary>
    public void Backward(T[] dHidden)
    {
        var c = _p.Config;
        int h = c.HiddenSize, inter = c.IntermediateSize, n = _b * _t;
        // Gradient buffers kept between steps (sized on the first backward, so a forward-only encoder never holds them);
        // each is cleared or overwritten before it is read.
        var dx = _dx = Sized(_dx, n * h);
        dHidden.AsSpan(0, n * h).CopyTo(dx);
        var dS = _dS = Sized(_dS, n * h);
        var dH = _dH = Sized(_dH, n * h);
        var dCtx = _dCtx = Sized(_dCtx, n * h);
        var dQ = _dQ = Sized(_dQ, n * h); var dK = _dK = Sized(_dK, n * h); var dV = _dV = Sized(_dV, n * h);
        var dG = _dG = Sized(_dG, n * inter);
        bool embGrads = _p.EmbeddingLnWeight.Grad is not null || _p.WordEmbeddings.Grad is not null
            || _p.PositionEmbeddings.Grad is not null || _p.TokenTypeEmbeddings.Grad is not null;
        for (int l = c.NumLayers - 1; l >= 0; l--)
        {
            var a = _acts[l];
            var lp = _p.Layers[l];
            // x' = LN₂(s₂): dS = dLN₂;  s₂ = h + Out(g): dh = dS (+ FFN path)
            Array.Clear(dS);
            LayerNorm.Backward(dS, lp.OutputLnWeight.Grad, lp.OutputLnBias.Grad, dx, a.S2, lp.OutputLnWeight.Data, a.Ln2Mean, a.Ln2Rstd, n, h);
            Array.Copy(dS, dH, n * h);
            if (!a.Dropped)
            {
                Array.Clear(dG);
                BertLinearOps.Backward(dG, dS, a.G, n, lp.Output, a.LoraT.GetValueOrDefault(lp.Output));
                ApplyMask(dG, l, n, inter);
                CpuParallel.For(n, row => Gelu.Backward(dG.AsSpan(row * inter, inter), dG.AsSpan(row * inter, inter), a.U.AsSpan(row * inter, inter)), parallel: n > 1);
                BertLinearOps.Backward(dH, dG, a.H, n, lp.Intermediate, a.LoraT.GetValueOrDefault(lp.Intermediate));
            }
            // h = LN₁(s₁): dS = dLN₁;  s₁ = x + AttnOut(ctx): dx = dS (+ attention path)
            Array.Clear(dS);
            LayerNorm.Backward(dS, lp.AttentionLnWeight.Grad, lp.AttentionLnBias.Grad, dH, a.S1, lp.AttentionLnWeight.Data, a.Ln1Mean, a.Ln1Rstd, n, h);
            Array.Copy(dS, dx, n * h);
            Array.Clear(dCtx);
            BertLinearOps.Backward(dCtx, dS, a.Ctx, n, lp.AttentionOutput, a.LoraT.GetValueOrDefault(lp.AttentionOutput));
            Array.Clear(dQ); Array.Clear(dK); Array.Clear(dV);
            MaskedAttention.Backward(dQ, dK, dV, dCtx, a.Q, a.K, a.V, a.Probs, _valid, _b, _t, c.NumHeads, c.HeadDim);
            // Below layer 0 only the embeddings take dx: without their gradients its three GEMMs are skipped.
            var dIn = l > 0 || embGrads ? dx : null;
            BertLinearOps.Backward(dIn, dQ, a.X, n, lp.Query, a.LoraT.GetValueOrDefault(lp.Query));
            BertLinearOps.Backward(dIn, dK, a.X, n, lp.Key, a.LoraT.GetValueOrDefault(lp.Key));
            BertLinearOps.Backward(dIn, dV, a.X, n, lp.Value, a.LoraT.GetValueOrDefault(lp.Value));
        }
        if (!embGrads) return;
        Array.Clear(dS);
        LayerNorm.Backward(dS, _p.EmbeddingLnWeight.Grad, _p.EmbeddingLnBias.Grad, dx, _emb, _p.EmbeddingLnWeight.Data, _embMean, _embRstd, n, h);
        for (int row = 0; row < n; row++)
        {
            var d = dS.AsSpan(row * h, h);
            if (_p.WordEmbeddings.Grad is { } gw) TensorPrimitives.Add<T>(gw.AsSpan(_ids[row] * h, h), d, gw.AsSpan(_ids[row] * h, h));
            if (_p.PositionEmbeddings.Grad is { } gp) TensorPrimitives.Add<T>(gp.AsSpan(row % _t * h, h), d, gp.AsSpan(row % _t * h, h));
            if (_p.TokenTypeEmbeddings.Grad is { } gt) TensorPrimitives.Add<T>(gt.AsSpan(_types[row] * h, h), d, gt.AsSpan(_types[row] * h, h));
        }
    }

    /// <summary>g ∘= keep mask of layer l (Trans-PEFT knowledge masking), drawn afresh from the same counters.</summary>
    private void ApplyMask(T[] g, int layer, int n, int inter)
    {
        if (_perturbation is not { HasMask: true } pert) return;
        var keep = System.Buffers.ArrayPool<float>.Shared.Rent(n * inter);
        pert.FillMask(layer, 0, n, inter, keep.AsSpan(0, n * inter));
        if (typeof(T) == typeof(float))
        {
            var gf = (float[])(object)g;
            TensorPrimitives.Multiply(gf.AsSpan(0, n * inter), keep.AsSpan(0, n * inter), gf.AsSpan(0, n * inter));
        }
        else
            for (int i = 0; i < n * inter; i++) g[i] *= T.CreateTruncating(keep[i]);
        System.Buffers.ArrayPool<float>.Shared.Return(keep);
    }

    private static T[] Sized(T[] a, int len) => a.Length == len ? a : new T[len];

    private void Ensure(int n)
    {
        var c = _p.Config;
        int h = c.HiddenSize, inter = c.IntermediateSize, probs = _b * c.NumHeads * _t * _t;
        _emb = Sized(_emb, n * h); _embMean = Sized(_embMean, n); _embRstd = Sized(_embRstd, n); _out = Sized(_out, n * h);
        if (_acts.Length != c.NumLayers) _acts = Enumerable.Range(0, c.NumLayers).Select(_ => new LayerActs()).ToArray();
        for (int l = 0; l < c.NumLayers; l++)
        {
            var a = _acts[l];
            a.X = Sized(a.X, n * h); a.Q = Sized(a.Q, n * h); a.K = Sized(a.K, n * h); a.V = Sized(a.V, n * h);
            a.Ctx = Sized(a.Ctx, n * h); a.S1 = Sized(a.S1, n * h); a.H = Sized(a.H, n * h); a.S2 = Sized(a.S2, n * h);
            a.U = Sized(a.U, n * inter); a.G = Sized(a.G, n * inter); a.Probs = Sized(a.Probs, probs);
            a.Ln1Mean = Sized(a.Ln1Mean, n); a.Ln1Rstd = Sized(a.Ln1Rstd, n); a.Ln2Mean = Sized(a.Ln2Mean, n); a.Ln2Rstd = Sized(a.Ln2Rstd, n);
            foreach (var lin in _p.Layers[l].Linears)
            {
                if (lin.Lora is { } lora) a.LoraT[lin] = Sized(a.LoraT.GetValueOrDefault(lin) ?? [], n * lora.Rank);
                else a.LoraT.Remove(lin);
            }
        }
    }
}
