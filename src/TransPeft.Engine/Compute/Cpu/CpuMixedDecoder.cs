using System.Numerics.Tensors;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// One decode step for N sequences at once, each with its own KV cache (batch 1), position and adapter (or none):
/// the continuous batcher's decode rows. The base projections run as ONE GEMM over all N rows, so the frozen
/// weights are streamed once per step instead of once per request (<see cref="RowDot"/>: every row's sums run in
/// the same order whatever the batch, so a sequence gets bit-identical logits alone or batched) (what makes batching pay on a memory-bound
/// decode); each projection's LoRA is then added per adapter segment (<see cref="MixedLora"/>, from each adapter's
/// <see cref="CpuLoraImage"/>); RoPE and
/// attention run per row, at the row's own position, against the row's own cache. Rows sorted by adapter give one
/// segment per adapter. Same layer recipe as <see cref="CpuTransformer.ForwardCached"/>; a test ties every row to
/// the single-sequence path.
/// Not thread-safe: one step at a time (the batcher's stepping thread). Working memory grows to the largest N seen.
/// </summary>
internal sealed unsafe class CpuMixedDecoder
{
    private readonly TransformerModel _model;
    private readonly Rope<float> _rope;
    private int _capacityRows = -1;
    private LoraSlot[] _slotModules = []; // this step's module of each adapter for the projection at hand
    private float[] _x = [], _n = [], _q = [], _k = [], _v = [], _att = [], _proj = [], _h = [], _g = [], _u = [], _a = [], _rstd = [], _t = [];
    private (float[] Q, float[] K, float[] Att, float[] Lse)[] _rowScratch = []; // per row: RoPE'd query and key, attention out, log-sum-exp
    private KvCache[] _stepCaches = [];                                      // this step's caches (cleared after it)
    private int[] _pos = [];                                                 // each row's position this step

    public CpuMixedDecoder(TransformerModel model, int maxPositions = 0)
    {
        _model = model;
        _rope = new Rope<float>(model.Config, maxPositions > 0 ? maxPositions : model.Config.MaxPositionEmbeddings);
    }

    public ModelConfig Config => _model.Config;

    /// <summary>
    /// Feeds ids[i] to sequence i at position caches[i].Length, appends its key/value there, and writes its next-token
    /// logits to logits[i·V ..]. <paramref name="rowSlots"/>[i] picks <paramref name="adapters"/>[slot] (an adapter's
    /// <see cref="CpuLoraImage"/>) for row i, or -1 for the base model. Every cache must have room for one more position.
    /// </summary>
    public void Decode(ReadOnlySpan<int> ids, ReadOnlySpan<KvCache> caches, ReadOnlySpan<int> rowSlots, IReadOnlyList<CpuLoraImage?> adapters, Span<float> logits)
    {
        var c = Config;
        int n = ids.Length, v = c.VocabSize;
        if (caches.Length != n || rowSlots.Length != n) throw new ArgumentException($"{n} ids, {caches.Length} caches and {rowSlots.Length} adapter slots: expected one of each per row");
        if (logits.Length < (long)n * v) throw new ArgumentException($"logits hold {logits.Length} floats; {n} rows need {(long)n * v}");
        ModelRules.CheckDecodeRows(c, _rope.MaxPositions, ids, caches);
        for (int i = 0; i < n; i++)
            if (caches[i].K.Length == 0 || caches[i].K[0] is null)
                throw new ArgumentException($"row {i}: the KV cache holds no host storage (a device cache?); the CPU step needs host K/V arrays");
        if (n == 0) return;
        Ensure(n);
        caches.CopyTo(_stepCaches);
        long attentionWork = 0;
        for (int i = 0; i < n; i++)
        {
            _pos[i] = caches[i].Length; // read once: every layer writes and attends at this position
            attentionWork += (long)(_pos[i] + 1) * c.NumHeads * c.HeadDim;
        }
        try { Step(ids, n, rowSlots, adapters, logits, attentionWork); }
        finally
        {
            // Hold no request's cache, and no address into an adapter's image, between steps.
            Array.Clear(_stepCaches, 0, n);
            Array.Clear(_slotModules);
        }
    }

    private void Step(ReadOnlySpan<int> ids, int n, ReadOnlySpan<int> rowSlots, IReadOnlyList<CpuLoraImage?> adapters, Span<float> logits, long attentionWork)
    {
        var c = Config;
        int h = c.HiddenSize, inter = c.IntermediateSize, v = c.VocabSize;
        var segments = AdapterSegments.FromRowSlots(rowSlots);
        if (_slotModules.Length < adapters.Count) _slotModules = new LoraSlot[adapters.Count];
        var slotModules = _slotModules.AsSpan(0, adapters.Count);

        Embedding.Forward(_x, ids, _model.Embed.Data, n, h, v);
        for (int l = 0; l < c.NumLayers; l++)
        {
            var w = _model.Layers[l];
            RmsNorm.Forward(_n, _rstd, _x, w.InputNorm.Data, n, h, c.RmsNormEps);
            Project(_q, _n, n, l, Projection.Q, w, segments, adapters, slotModules);
            Project(_k, _n, n, l, Projection.K, w, segments, adapters, slotModules);
            Project(_v, _n, n, l, Projection.V, w, segments, adapters, slotModules);
            // Rows attend independently (own position, own cache): across threads when the session has them and the
            // step is big enough; each row's operations are the same either way.
            // Split by row only when every thread gets one: with fewer rows than threads each row's attention splits by
            // head instead (Attention.Forward), which keeps every core busy on a few long contexts.
            if (CpuParallel.Splits(n, attentionWork > 200_000 && n >= CpuParallel.Threads)) AttendAcrossThreads(n, l);
            else for (int i = 0; i < n; i++) AttendRow(i, l);
            Project(_proj, _att, n, l, Projection.O, w, segments, adapters, slotModules);
            TensorPrimitives.Add(_x.AsSpan(0, n * h), _proj.AsSpan(0, n * h), _h.AsSpan(0, n * h));
            RmsNorm.Forward(_n, _rstd, _h, w.PostNorm.Data, n, h, c.RmsNormEps);
            Project(_g, _n, n, l, Projection.Gate, w, segments, adapters, slotModules);
            Project(_u, _n, n, l, Projection.Up, w, segments, adapters, slotModules);
            SwiGlu.Forward(_a, _g, _u, null, n * inter);
            Project(_proj, _a, n, l, Projection.Down, w, segments, adapters, slotModules);
            TensorPrimitives.Add(_h.AsSpan(0, n * h), _proj.AsSpan(0, n * h), _x.AsSpan(0, n * h));
        }
        for (int i = 0; i < n; i++) _stepCaches[i].Length = _pos[i] + 1;
        RmsNorm.Forward(_n, _rstd, _x, _model.FinalNorm.Data, n, h, c.RmsNormEps);
        fixed (float* pl = logits, px = _n, ph = _model.Head.Data)
            RowDot.MatmulNT(pl, px, ph, n, h, v, accumulate: false, 1f);
    }

    /// <summary>
    /// Row i at its cache's next position: RoPE on its query and key, the key and value appended to its cache, attention
    /// over the cache into _att[i]. Each row has its own scratch, so rows may run on different threads.
    /// </summary>
    private void AttendRow(int i, int l)
    {
        var c = Config;
        int qd = c.QDim, kvd = c.KvDim;
        var cache = _stepCaches[i];
        var (qRow, kRow, attRow, lseRow) = _rowScratch[i];
        int pos = _pos[i];
        _q.AsSpan(i * qd, qd).CopyTo(qRow);
        _rope.Forward(qRow, 1, 1, c.NumHeads, pos);
        _k.AsSpan(i * kvd, kvd).CopyTo(kRow);
        _rope.Forward(kRow, 1, 1, c.NumKvHeads, pos);
        kRow.CopyTo(cache.K[l].AsSpan(pos * kvd, kvd));
        _v.AsSpan(i * kvd, kvd).CopyTo(cache.V[l].AsSpan(pos * kvd, kvd));
        Attention.Forward(attRow, lseRow, qRow, cache.K[l], cache.V[l], 1, 1, cache.Capacity, pos, c.NumHeads, c.NumKvHeads, c.HeadDim);
        attRow.AsSpan(0, qd).CopyTo(_att.AsSpan(i * qd, qd));
    }

    /// <summary>The rows across threads, in its own method so that the serial path allocates no closure.</summary>
    private void AttendAcrossThreads(int n, int l) => CpuParallel.For(n, i => AttendRow(i, l));

    /// <summary>y = x·Wᵀ + b over all rows (weights streamed once), then each adapter segment's LoRA.</summary>
    private void Project(float[] y, float[] x, int n, int layer, Projection p, LayerWeights w, AdapterSegments segments,
        IReadOnlyList<CpuLoraImage?> adapters, Span<LoraSlot> slotModules)
    {
        var weight = w.Weight(p);
        int outDim = weight.Shape[0], inDim = weight.Shape[1];
        fixed (float* py = y, px = x, pw = weight.Data)
            RowDot.MatmulNT(py, px, pw, n, inDim, outDim, accumulate: false, 1f);
        if (w.Bias(p) is { } bias)
            for (int i = 0; i < n; i++) TensorPrimitives.Add(y.AsSpan(i * outDim, outDim), bias.Data, y.AsSpan(i * outDim, outDim));
        int rank = 0;
        for (int s = 0; s < adapters.Count; s++)
        {
            var m = slotModules[s] = adapters[s] is { } image ? image[layer, p] : default;
            rank = Math.Max(rank, m.Rank);
        }
        if (_t.Length < n * rank) _t = new float[n * rank];
        MixedLora.Forward(y, x, n, inDim, outDim, segments, slotModules, _t);
    }

    private void Ensure(int n)
    {
        if (n <= _capacityRows) return;
        var c = Config;
        int h = c.HiddenSize, qd = c.QDim, kvd = c.KvDim, inter = c.IntermediateSize;
        _capacityRows = n;
        _x = new float[n * h]; _n = new float[n * h]; _h = new float[n * h]; _proj = new float[n * h];
        _q = new float[n * qd]; _att = new float[n * qd]; _k = new float[n * kvd]; _v = new float[n * kvd];
        _g = new float[n * inter]; _u = new float[n * inter]; _a = new float[n * inter]; _rstd = new float[n];
        _stepCaches = new KvCache[n];
        _pos = new int[n];
        _rowScratch = [.. Enumerable.Range(0, n).Select(_ => (new float[qd], new float[kvd], new float[qd], new float[c.NumHeads]))];
    }
}
