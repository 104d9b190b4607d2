using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Inference;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>Sizes and switches of a <see cref="CudaKvDecoder"/>.</summary>
/// <param name="Slots">KV cache slots (sequences on the device at once, one per cache row).</param>
/// <param name="Capacity">Positions per slot (the session's maximum sequence length).</param>
/// <param name="AdapterSlots">Adapters on the device at once (<see cref="CudaAdapterPool"/>).</param>
/// <param name="MaxMemoryBytes">Refuse a KV arena that, with the weights, would need more device bytes (null: no limit).</param>
/// <param name="CaptureGraphs">Capture each decode batch size once as a CUDA graph and replay it (devices that support graphs).</param>
internal sealed record CudaKvOptions(int Slots, int Capacity, int AdapterSlots, long? MaxMemoryBytes = null, bool CaptureGraphs = true);

/// <summary>
/// KV-cached inference on the CUDA backend for one session: one copy of the base weights (the accessor
/// <see cref="CudaTransformer.Weight"/> of a base-only <see cref="CudaTransformer.ForInference"/>), a device KV cache
/// arena of <see cref="CudaKvOptions.Slots"/> slots × <see cref="CudaKvOptions.Capacity"/> positions per layer
/// (<c>[slot, cap, nkv, d]</c> bf16, kernels/decode.cu), the session's adapters in a device pool
/// (<see cref="CudaAdapterPool"/>, BGMV), and working memory for a prefill and for a decode step.
/// <para>
/// Prefill (one sequence of T tokens at a time, any adapter): embedding, per layer RMSNorm, cuBLAS projections plus
/// BGMV LoRA, RoPE from the slot's position, <c>kv_cache_write</c> into the slot, flash attention over the slot's
/// cache (<c>Tkv = pos0 + T</c>, <c>Tcap = cap</c>), SwiGLU FFN; final norm and LM head on the last row only.
/// </para>
/// <para>
/// Decode (N rows, one token each, rows from different requests and adapters): token ids, slots, positions and
/// adapter slots go into ONE pinned staging buffer and up in one asynchronous copy (the graph's first node); the step
/// reads them from the device (<c>rope_rows</c>, <c>kv_append</c>, <c>decode_attention</c>, BGMV), so it is the same launch sequence for
/// every step of a given N: captured once per N as a CUDA graph and replayed (plain launches on a device without
/// graphs). fp32 logits [N, V] come back in one copy into pinned memory; one synchronization per step. The per-token
/// path allocates nothing on the managed heap once the N-row working memory exists.
/// </para>
/// Thread-safe: every call takes one lock (one stream, one set of buffers); the session's contexts serialise here.
/// </summary>
internal sealed unsafe class CudaKvDecoder : IDisposable
{
    private enum Attend { Decode, Prefill, Full }

    /// <summary>Where a step's layers take their per-row values from: rows, the batch shape for RoPE and full attention,
    /// the slot and first position of a prefill, and whether LoRA runs.</summary>
    private readonly record struct Step(Attend Mode, int Rows, int B, int T, int Slot, int Pos0, bool Lora);

    /// <summary>Working memory for up to <see cref="Rows"/> rows (bf16 activations unless noted), LoRA scratch for
    /// rank <see cref="Rank"/>, fp32 logits for <see cref="LogitRows"/> rows, and the four int32 row arrays
    /// (ids, slots, positions, adapter slots: each n long for an n-row step, one after another); a prefill's also
    /// holds fp32 hidden states for a full forward.</summary>
    private sealed class Work
    {
        public int Rows, Rank, LogitRows;
        public ArenaRegion X, N, H, Proj, Q, K, V, Att, G, U, A, Rstd, Lse, T, Logits, Ints, Hidden;

        public static Work Plan(ModelConfig c, int rows, int rank, int logitRows, int hiddenRows)
        {
            var l = new ArenaLayout();
            int h = c.HiddenSize;
            var w = new Work { Rows = rows, Rank = rank, LogitRows = logitRows };
            w.X = l.Add("x", (long)rows * h, 2); w.N = l.Add("norm", (long)rows * h, 2); w.H = l.Add("h", (long)rows * h, 2);
            w.Proj = l.Add("proj", (long)rows * h, 2);
            w.Q = l.Add("q", (long)rows * c.QDim, 2); w.Att = l.Add("att", (long)rows * c.QDim, 2);
            w.K = l.Add("k", (long)rows * c.KvDim, 2); w.V = l.Add("v", (long)rows * c.KvDim, 2);
            w.G = l.Add("gate", (long)rows * c.IntermediateSize, 2); w.U = l.Add("up", (long)rows * c.IntermediateSize, 2);
            w.A = l.Add("act", (long)rows * c.IntermediateSize, 2);
            w.Rstd = l.Add("rstd", rows, 4); w.Lse = l.Add("lse", (long)rows * c.NumHeads, 4);
            w.T = l.Add("lora t", (long)rows * Math.Max(rank, 1), 4);
            w.Logits = l.Add("logits", (long)logitRows * c.VocabSize, 4);
            w.Ints = l.Add("row ints", 4L * rows + 3, 4); // + one SGMV segment: seg_start [2], seg_slot [1]
            w.Hidden = l.Add("hidden fp32", hiddenRows * (long)h, 4);
            w.Bytes = l.TotalBytes;
            return w;
        }

        public long Bytes;
    }

    private readonly CudaTransformer _base;
    private readonly IComputeDevice _device;
    private readonly CudaOps _ops;
    private readonly TransformerModel _model;
    private readonly CudaKvOptions _options;
    private readonly CudaAdapterPool _pool;
    private readonly object _gate = new();
    private readonly object _slotGate = new();
    private readonly float _eps, _scale;
    private readonly bool[] _slotUsed;
    private readonly IDeviceGraph?[] _graphs;
    private int _graphLayout = -1;
    private DevicePtr _kv;
    private long _kvLayerBytes;
    private Work? _decode, _prefill;
    private DevicePtr _decodeBase, _prefillBase;
    private nint _staging, _pinnedLogits;
    private int[] _prefillInts = [];
    private float[] _chunk = [];
    private bool _disposed;

    /// <summary>A decoder over the base weights <paramref name="model"/> uploaded to <paramref name="device"/> (tests and hosts
    /// without a session).</summary>
    public CudaKvDecoder(IComputeDevice device, TransformerModel model, CudaKvOptions options, bool ownsDevice)
        : this(CudaTransformer.ForInference(device, model, null, new CudaTransformerOptions { MaxPositions = options.Capacity }, ownsDevice), options) { }

    /// <summary>A decoder reading the base weights of <paramref name="weights"/> (a base-only inference model: its
    /// <see cref="CudaTransformer.Weight"/> and <see cref="CudaTransformer.InvFreq"/> are all the decoder uses of it) on
    /// that model's device. The decoder owns it: disposing the decoder disposes it (and the device, when it owns that).</summary>
    public CudaKvDecoder(CudaTransformer weights, CudaKvOptions options)
    {
        var model = weights.Model;
        var c = model.Config;
        if (weights.Adapter is not null) throw new ArgumentException("the decoder's weight store must be a base-only model: adapters go through its adapter pool");
        if (options.Slots <= 0) throw new ArgumentOutOfRangeException(nameof(options), $"KV cache slots must be positive, got {options.Slots}");
        if (options.Capacity <= 0 || options.Capacity > c.MaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(options), $"KV cache capacity {options.Capacity} must be in [1, max_position_embeddings {c.MaxPositionEmbeddings}]");
        var device = weights.Device;
        _base = weights;
        _device = device;
        _ops = _base.Ops;
        _model = model;
        _options = options;
        _pool = new CudaAdapterPool(device, c, options.AdapterSlots);
        _eps = (float)c.RmsNormEps;
        _scale = 1f / MathF.Sqrt(c.HeadDim); // as Compute/Cpu/Attention.cs computes it in fp32
        _slotUsed = new bool[options.Slots];
        _graphs = new IDeviceGraph?[options.Slots + 1];
    }

    public ModelConfig Config => _model.Config;
    public int MaxPositions => _options.Capacity;
    public int Slots => _options.Slots;
    internal IComputeDevice Device => _device;
    internal CudaAdapterPool Pool => _pool;
    /// <summary>Decode graphs captured and replayed so far (tests, benchmarks).</summary>
    internal int GraphCaptures { get; private set; }
    internal int GraphLaunches { get; private set; }
    /// <summary>Slots in use now.</summary>
    internal int SlotsInUse { get { lock (_slotGate) return _slotUsed.Count(u => u); } }

    // ---------------------------------------------------------------- caches and slots

    /// <summary>A cache of <paramref name="batchSize"/> rows; its device slots are taken on first use and given back by
    /// <see cref="KvCache.Dispose"/> (or when the cache is collected).</summary>
    public KvCache CreateCache(int batchSize, int capacity)
    {
        if (capacity > _options.Capacity)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache capacity {capacity} exceeds the session's maximum sequence length {_options.Capacity}");
        if (batchSize > _options.Slots)
            throw new ArgumentOutOfRangeException(nameof(batchSize), $"a KV cache of {batchSize} rows needs {batchSize} device slots; the session has {_options.Slots} (SessionOptions.MaxBatchSize)");
        return new KvCache(Config, batchSize, capacity, hostStorage: false) { Scratch = new CudaKvSlots(this, batchSize) };
    }

    private CudaKvSlots SlotsOf(KvCache cache)
    {
        if (cache.Scratch is not CudaKvSlots s || !ReferenceEquals(s.Owner, this))
            throw new ArgumentException("this KV cache was not made by this CUDA model's session (CreateCache)");
        if (s.Slots[0] >= 0) return s;
        EnsureKvArena();
        lock (_slotGate)
        {
            int free = 0;
            foreach (bool used in _slotUsed) if (!used) free++;
            if (free < s.Slots.Length)
                throw new InvalidOperationException($"all {_options.Slots} KV cache slots on the device are in use (SessionOptions.MaxBatchSize = {_options.Slots}): dispose finished contexts or raise MaxBatchSize");
            for (int r = 0, i = 0; r < s.Slots.Length; i++)
                if (!_slotUsed[i]) { _slotUsed[i] = true; s.Slots[r++] = i; }
        }
        return s;
    }

    internal void Release(CudaKvSlots s)
    {
        lock (_slotGate)
            for (int r = 0; r < s.Slots.Length; r++)
            {
                if (s.Slots[r] >= 0) _slotUsed[s.Slots[r]] = false;
                s.Slots[r] = -1;
            }
    }

    /// <summary>Allocates the KV arena on first use, refusing one that would break the session's memory limit.</summary>
    private void EnsureKvArena()
    {
        if (!_kv.IsNull) return;
        var c = Config;
        _kvLayerBytes = (long)_options.Slots * _options.Capacity * c.KvDim * 2;
        long total = 2L * c.NumLayers * _kvLayerBytes;
        if (_options.MaxMemoryBytes is long limit)
        {
            long weights = _base.ParameterLayout.Arena.TotalBytes + (_base.SharedBase?.Bytes ?? 0); // own arena + the session's shared base
            if (weights + total > limit)
                throw new InvalidOperationException($"the device KV cache of {_options.Slots} slots x {_options.Capacity} positions needs {total} bytes; with the weights' {weights} that exceeds SessionOptions.MaxMemoryBytes {limit}: lower MaxBatchSize or MaxSequenceLength");
        }
        _kv = _device.Allocate(total);
    }

    private DevicePtr KCache(int layer) => _kv.OffsetBytes(2L * layer * _kvLayerBytes);
    private DevicePtr VCache(int layer) => _kv.OffsetBytes((2L * layer + 1) * _kvLayerBytes);
    private long SlotBytes => (long)_options.Capacity * Config.KvDim * 2;

    // ---------------------------------------------------------------- adapters

    /// <summary>The adapter's weights changed in place (hot swap): re-uploaded before its next step.</summary>
    public void Invalidate(LoraAdapter adapter) { lock (_gate) _pool.Invalidate(adapter); }

    /// <summary>The session stopped serving the adapter: its device slot and pinned image are freed.</summary>
    public void Forget(LoraAdapter adapter) { lock (_gate) _pool.Forget(adapter); }

    /// <summary>Brings an adapter to the device now (what a host calls to pre-load; the decode steps do it on demand).
    /// Returns the wall time of the host work and the queued copy, and waits for the copy.</summary>
    public TimeSpan Preload(LoraAdapter adapter)
    {
        lock (_gate)
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            _pool.Acquire(adapter, _pool.BeginUse());
            _device.Synchronize();
            return sw.Elapsed;
        }
    }

    private int AdapterSlot(LoraAdapter? adapter, long stamp) => adapter is null ? -1 : _pool.Acquire(adapter, stamp);

    // ---------------------------------------------------------------- working memory

    private Work EnsureDecodeWork()
    {
        if (_decode is not null && _decode.Rank >= _pool.Rank) return _decode;
        // Coupled with StepDecode's _graphLayout check: the rank grows only by a re-plan (a new LayoutVersion), which drops
        // the graphs there too; dropping them here as well keeps no graph alive over the working memory freed below.
        DropGraphs();
        if (_decode is not null) _device.Free(_decodeBase);
        _decode = null;
        var w = Work.Plan(Config, _options.Slots, _pool.Rank, _options.Slots, 0);
        _decodeBase = _device.Allocate(w.Bytes);
        _decode = w;
        if (_staging == 0)
        {
            _staging = _device.AllocateHost(16L * _options.Slots);
            _pinnedLogits = _device.AllocateHost(4L * _options.Slots * Config.VocabSize);
        }
        return w;
    }

    private Work EnsurePrefillWork(int rows)
    {
        if (_prefill is not null && _prefill.Rows >= rows && _prefill.Rank >= _pool.Rank) return _prefill;
        rows = Math.Max(rows, _prefill?.Rows ?? 0);
        if (_prefill is not null) _device.Free(_prefillBase);
        _prefill = null;
        var w = Work.Plan(Config, rows, _pool.Rank, Math.Min(rows, 64), rows);
        _prefillBase = _device.Allocate(w.Bytes);
        _prefill = w;
        if (_prefillInts.Length < 4 * rows + 3) _prefillInts = new int[4 * rows + 3];
        return w;
    }

    private DevicePtr At(Work w, ArenaRegion r) => (ReferenceEquals(w, _decode) ? _decodeBase : _prefillBase).OffsetBytes(r.Offset);

    /// <summary>Row array <paramref name="which"/> (0 ids, 1 slots, 2 positions, 3 adapter slots, 4 the one SGMV segment's
    /// seg_start [2] then seg_slot [1]) of an n-row step.</summary>
    private DevicePtr Ints(Work w, int which, int n) => At(w, w.Ints).OffsetBytes(4L * which * n);

    private void DropGraphs()
    {
        for (int i = 0; i < _graphs.Length; i++)
        {
            _graphs[i]?.Dispose();
            _graphs[i] = null;
        }
    }

    // ---------------------------------------------------------------- the calls

    /// <summary>Runs ids [B, T] after the cache's positions, filling its slots; last-position logits [B, V].</summary>
    public void Prefill(KvCache cache, ReadOnlySpan<int> ids, int b, int t, LoraAdapter? adapter, Span<float> lastLogits)
    {
        var c = Config;
        if (b != cache.BatchSize) throw new ArgumentException($"batch {b} does not match the cache's {cache.BatchSize}");
        int pos0 = cache.Length, v = c.VocabSize, h = c.HiddenSize;
        ModelRules.CheckBatch(c, MaxPositions, ids.Length, b, t, pos0);
        ModelRules.CheckTokens(c, ids);
        if (pos0 + t > cache.Capacity) throw new ArgumentException($"cache holds {cache.Capacity} positions; {pos0} used, {t} more requested");
        if (lastLogits.Length < b * v) throw new ArgumentException($"logits hold {lastLogits.Length} floats; {b} rows need {b * v}");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var slots = SlotsOf(cache);
            int a = AdapterSlot(adapter, _pool.BeginUse());
            var w = EnsurePrefillWork(t);
            for (int r = 0; r < b; r++)
            {
                UploadRowInts(w, ids.Slice(r * t, t), a);
                _device.PushRange("prefill");
                _ops.EmbeddingForward(At(w, w.X), Ints(w, 0, t), _base.Weight(_model.Embed), t, h, v);
                var step = new Step(Attend.Prefill, t, 1, t, slots.Slots[r], pos0, a >= 0);
                for (int l = 0; l < c.NumLayers; l++) Layer(l, w, step);
                // Final norm and LM head on the last row only: its logits are all a prefill returns.
                _ops.RmsNormForward(At(w, w.N), At(w, w.Rstd), At(w, w.X).OffsetBytes((long)(t - 1) * h * 2), _base.Weight(_model.FinalNorm), 1, h, _eps);
                _ops.MatmulNT(At(w, w.Logits), At(w, w.N), _base.Weight(_model.Head), 1, h, v, false, 1f, CudaDataType.R32F);
                _device.PopRange();
                _device.Download(lastLogits.Slice(r * v, v), At(w, w.Logits));
            }
            cache.Length = pos0 + t;
        }
        NonFiniteValueException.ThrowIfAny(lastLogits[..(b * v)], "model output", "logits");
    }

    /// <summary>One token per cache row, ids [B], all rows with <paramref name="adapter"/>; logits [B, V].</summary>
    public void Decode(KvCache cache, ReadOnlySpan<int> ids, LoraAdapter? adapter, Span<float> logits)
    {
        var c = Config;
        int n = cache.BatchSize;
        CheckDecodeRow(cache, n, ids.Length);
        ModelRules.CheckTokens(c, ids);
        if (logits.Length < n * c.VocabSize) throw new ArgumentException($"logits hold {logits.Length} floats; {n} rows need {n * c.VocabSize}");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var slots = SlotsOf(cache);
            int a = AdapterSlot(adapter, _pool.BeginUse());
            EnsureDecodeWork();
            int* st = (int*)_staging;
            for (int r = 0; r < n; r++) { st[r] = ids[r]; st[n + r] = slots.Slots[r]; st[2 * n + r] = cache.Length; st[3 * n + r] = a; }
            StepDecode(n, logits);
            cache.Length++;
        }
    }

    /// <summary>
    /// One token for each of N sequences, each with its own batch-1 cache, position and adapter (null: the base):
    /// the continuous batcher's decode rows in ONE step. Logits [N, V].
    /// </summary>
    public void DecodeMixed(ReadOnlySpan<int> ids, ReadOnlySpan<KvCache> caches, ReadOnlySpan<LoraAdapter?> rowAdapters, Span<float> logits)
    {
        var c = Config;
        int n = ids.Length;
        if (caches.Length != n || rowAdapters.Length != n) throw new ArgumentException($"{n} ids, {caches.Length} caches and {rowAdapters.Length} adapters: expected one of each per row");
        if (n > _options.Slots) throw new ArgumentException($"a decode step of {n} rows exceeds the session's {_options.Slots} KV cache slots (SessionOptions.MaxBatchSize)");
        if (logits.Length < n * c.VocabSize) throw new ArgumentException($"logits hold {logits.Length} floats; {n} rows need {n * c.VocabSize}");
        ModelRules.CheckDecodeRows(c, MaxPositions, ids, caches);
        if (n == 0) return;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long stamp = _pool.BeginUse();
            // Adapters first: acquiring one may re-plan the pool, which resizes the working memory.
            for (int r = 0; r < n; r++) AdapterSlot(rowAdapters[r], stamp);
            EnsureDecodeWork();
            int* st = (int*)_staging;
            for (int r = 0; r < n; r++)
            {
                st[r] = ids[r];
                st[n + r] = SlotsOf(caches[r]).Slots[0];
                st[2 * n + r] = caches[r].Length;
                st[3 * n + r] = AdapterSlot(rowAdapters[r], stamp);
            }
            StepDecode(n, logits);
            for (int r = 0; r < n; r++) caches[r].Length++;
        }
    }

    private void CheckDecodeRow(KvCache cache, int b, int idsLength)
    {
        ModelRules.CheckBatch(Config, MaxPositions, idsLength, b, 1, cache.Length);
        if (cache.Length + 1 > cache.Capacity) throw new ArgumentException($"cache holds {cache.Capacity} positions, all used");
    }

    /// <summary>The step (staging upload and launches: one graph, or plain launches), fp32 logits down, one synchronization.</summary>
    private void StepDecode(int n, Span<float> logits)
    {
        var w = _decode!;
        int v = Config.VocabSize;
        if (_options.CaptureGraphs && _device.SupportsGraphs)
        {
            if (_graphLayout != _pool.LayoutVersion) { DropGraphs(); _graphLayout = _pool.LayoutVersion; }
            var g = _graphs[n];
            if (g is null)
            {
                _device.BeginCapture();
                try { RecordDecode(w, n); }
                catch
                {
                    _device.AbortCapture();
                    throw;
                }
                g = _graphs[n] = _device.EndCapture();
                GraphCaptures++;
            }
            g.Launch();
            GraphLaunches++;
        }
        else RecordDecode(w, n);
        _device.DownloadAsync(_pinnedLogits, At(w, w.Logits), 4L * n * v);
        _device.Synchronize();
        var got = new ReadOnlySpan<float>((void*)_pinnedLogits, n * v);
        got.CopyTo(logits);
        NonFiniteValueException.ThrowIfAny(got, "model output", "logits");
    }

    /// <summary>Queues the decode step of n rows: the staging upload of their ids/slots/positions/adapter slots (inside the
    /// graph too: a captured copy reads the pinned bytes when it runs, so every replay takes that token's values), then
    /// the launches, which read those values from the device.</summary>
    private void RecordDecode(Work w, int n)
    {
        var c = Config;
        int h = c.HiddenSize;
        _device.UploadAsync(Ints(w, 0, n), _staging, 16L * n);
        _device.PushRange("decode");
        _ops.EmbeddingForward(At(w, w.X), Ints(w, 0, n), _base.Weight(_model.Embed), n, h, c.VocabSize);
        var step = new Step(Attend.Decode, n, n, 1, -1, 0, _pool.Rank > 0);
        for (int l = 0; l < c.NumLayers; l++) Layer(l, w, step);
        _ops.RmsNormForward(At(w, w.N), At(w, w.Rstd), At(w, w.X), _base.Weight(_model.FinalNorm), n, h, _eps);
        _ops.MatmulNT(At(w, w.Logits), At(w, w.N), _base.Weight(_model.Head), n, h, c.VocabSize, false, 1f, CudaDataType.R32F);
        _device.PopRange();
    }

    /// <summary>Full forward of ids [B, T] from position 0 (no cache): logits [B*T, V] and/or final-norm hidden states [B*T, C].</summary>
    public void Forward(ReadOnlySpan<int> ids, int b, int t, LoraAdapter? adapter, Span<float> logits, Span<float> hidden)
    {
        var c = Config;
        int n = b * t, h = c.HiddenSize, v = c.VocabSize;
        ModelRules.CheckBatch(c, MaxPositions, ids.Length, b, t);
        ModelRules.CheckTokens(c, ids);
        if (!logits.IsEmpty && logits.Length < (long)n * v) throw new ArgumentException($"logits hold {logits.Length} floats; {n} rows need {(long)n * v}");
        if (!hidden.IsEmpty && hidden.Length < (long)n * h) throw new ArgumentException($"hidden states hold {hidden.Length} floats; {n} rows need {(long)n * h}");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var w = RunFull(ids, b, t, adapter);
            if (!hidden.IsEmpty)
            {
                _ops.CastBf16ToF32(At(w, w.Hidden), At(w, w.N), (long)n * h);
                _device.Download(hidden[..(n * h)], At(w, w.Hidden));
            }
            if (logits.IsEmpty) return;
            for (int r0 = 0; r0 < n; r0 += w.LogitRows)
            {
                int rows = Math.Min(w.LogitRows, n - r0);
                HeadChunk(w, r0, rows);
                _device.Download(logits.Slice(r0 * v, rows * v), At(w, w.Logits));
            }
        }
        if (!logits.IsEmpty) NonFiniteValueException.ThrowIfAny(logits[..(n * v)], "model output", "logits");
    }

    /// <summary>Sum of cross-entropy over the batch's counted targets (labels shifted by one, -100 ignored), fp32 logits
    /// chunk by chunk on the device, the log-softmax in double on the host.</summary>
    public (double LossSum, int Counted) Loss(TokenBatch batch, LoraAdapter? adapter)
    {
        var c = Config;
        int b = batch.BatchSize, t = batch.SeqLen, n = b * t, v = c.VocabSize;
        if (batch.Labels.Length != n) throw new ArgumentException($"expected {n} labels, got {batch.Labels.Length}");
        for (int i = 0; i < n; i++)
        {
            int y = batch.Labels[i];
            if (y != TokenBatch.IgnoreIndex && (uint)y >= (uint)v) throw new ArgumentOutOfRangeException(nameof(batch), $"target id {y} is outside the vocabulary [0, {v})");
        }
        double sum = 0;
        int counted = 0;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ModelRules.CheckBatch(c, MaxPositions, batch.InputIds.Length, b, t);
            ModelRules.CheckTokens(c, batch.InputIds);
            var w = RunFull(batch.InputIds, b, t, adapter);
            if (_chunk.Length < w.LogitRows * v) _chunk = new float[w.LogitRows * v];
            for (int r0 = 0; r0 < n; r0 += w.LogitRows)
            {
                int rows = Math.Min(w.LogitRows, n - r0);
                HeadChunk(w, r0, rows);
                _device.Download(_chunk.AsSpan(0, rows * v), At(w, w.Logits));
                for (int i = 0; i < rows; i++)
                {
                    int row = r0 + i, j = row % t;
                    int y = j < t - 1 ? batch.Labels[row + 1] : TokenBatch.IgnoreIndex;
                    if (y == TokenBatch.IgnoreIndex) continue;
                    sum -= Sampling.LogSoftmaxAt(_chunk.AsSpan(i * v, v), y);
                    counted++;
                }
            }
        }
        return (NonFiniteValueException.ThrowIfNotFinite(sum, "model output", "the loss"), counted);
    }

    /// <summary>Every layer of ids [B, T] with attention over their own keys; leaves the final-norm output in N.</summary>
    private Work RunFull(ReadOnlySpan<int> ids, int b, int t, LoraAdapter? adapter)
    {
        var c = Config;
        int n = b * t, h = c.HiddenSize;
        int a = AdapterSlot(adapter, _pool.BeginUse());
        var w = EnsurePrefillWork(n);
        UploadRowInts(w, ids, a);
        _device.PushRange("forward");
        _ops.EmbeddingForward(At(w, w.X), Ints(w, 0, n), _base.Weight(_model.Embed), n, h, c.VocabSize);
        var step = new Step(Attend.Full, n, b, t, -1, 0, a >= 0);
        for (int l = 0; l < c.NumLayers; l++) Layer(l, w, step);
        _ops.RmsNormForward(At(w, w.N), At(w, w.Rstd), At(w, w.X), _base.Weight(_model.FinalNorm), n, h, _eps);
        _device.PopRange();
        return w;
    }

    private void HeadChunk(Work w, int r0, int rows)
    {
        var c = Config;
        _ops.MatmulNT(At(w, w.Logits), At(w, w.N).OffsetBytes((long)r0 * c.HiddenSize * 2), _base.Weight(_model.Head), rows, c.HiddenSize, c.VocabSize, false, 1f, CudaDataType.R32F);
    }

    /// <summary>Uploads the ids of an n-row prefill/forward and its one SGMV segment (the row arrays' layout; the per-row
    /// adapter slots are read by decode's BGMV only).</summary>
    private void UploadRowInts(Work w, ReadOnlySpan<int> ids, int adapterSlot)
    {
        int n = ids.Length;
        ids.CopyTo(_prefillInts);
        _prefillInts[4 * n] = 0; // every row is one segment of one adapter
        _prefillInts[4 * n + 1] = n;
        _prefillInts[4 * n + 2] = adapterSlot;
        _device.Upload<int>(Ints(w, 0, n), _prefillInts.AsSpan(0, 4 * n + 3));
    }

    // ---------------------------------------------------------------- the layer

    /// <summary>One decoder layer on the step's rows, in X: the same recipe as CpuTransformer's layer (pre-norm
    /// attention and SwiGLU FFN with residuals), attention by the step's mode.</summary>
    private void Layer(int l, Work w, in Step s)
    {
        var c = Config;
        var lw = _model.Layers[l];
        int n = s.Rows, h = c.HiddenSize, d = c.HeadDim, nh = c.NumHeads, nkv = c.NumKvHeads, kvd = c.KvDim;
        DevicePtr x = At(w, w.X), norm = At(w, w.N), q = At(w, w.Q), k = At(w, w.K), v = At(w, w.V), att = At(w, w.Att);
        var invFreq = _base.InvFreq;
        _device.PushRange("attention");
        _ops.RmsNormForward(norm, At(w, w.Rstd), x, _base.Weight(lw.InputNorm), n, h, _eps);
        Project(w, q, norm, n, l, Projection.Q, s);
        Project(w, k, norm, n, l, Projection.K, s);
        Project(w, v, norm, n, l, Projection.V, s);
        switch (s.Mode)
        {
            case Attend.Decode:
            {
                DevicePtr slot = Ints(w, 1, n), pos = Ints(w, 2, n);
                _ops.RopeRows(q, invFreq, pos, n, nh, d);
                _ops.RopeRows(k, invFreq, pos, n, nkv, d);
                _ops.KvAppend(KCache(l), VCache(l), k, v, slot, pos, n, _options.Capacity, kvd);
                _ops.DecodeAttention(att, q, KCache(l), VCache(l), slot, pos, n, _options.Capacity, nh, nkv, d, _scale);
                break;
            }
            case Attend.Prefill:
            {
                var kc = KCache(l).OffsetBytes(s.Slot * SlotBytes);
                var vc = VCache(l).OffsetBytes(s.Slot * SlotBytes);
                _ops.RopeForward(q, invFreq, 1, n, nh, d, s.Pos0);
                _ops.RopeForward(k, invFreq, 1, n, nkv, d, s.Pos0);
                _ops.KvCacheWrite(kc, k, 1, n, _options.Capacity, s.Pos0, kvd);
                _ops.KvCacheWrite(vc, v, 1, n, _options.Capacity, s.Pos0, kvd);
                _ops.AttentionForward(att, At(w, w.Lse), q, kc, vc, 1, n, s.Pos0 + n, _options.Capacity, nh, nkv, d, _scale);
                break;
            }
            default:
                _ops.RopeForward(q, invFreq, s.B, s.T, nh, d, 0);
                _ops.RopeForward(k, invFreq, s.B, s.T, nkv, d, 0);
                _ops.AttentionForward(att, At(w, w.Lse), q, k, v, s.B, s.T, s.T, s.T, nh, nkv, d, _scale);
                break;
        }
        var proj = At(w, w.Proj);
        Project(w, proj, att, n, l, Projection.O, s);
        _device.PopRange();
        _device.PushRange("mlp");
        DevicePtr hres = At(w, w.H), g = At(w, w.G), u = At(w, w.U), a = At(w, w.A);
        _ops.RmsNormResidualForward(hres, norm, At(w, w.Rstd), x, proj, _base.Weight(lw.PostNorm), n, h, _eps);
        Project(w, g, norm, n, l, Projection.Gate, s);
        Project(w, u, norm, n, l, Projection.Up, s);
        _ops.SwiGluForward(a, g, u, n, c.IntermediateSize, DevicePtr.Null, l); // no StepParams: no Trans-PEFT mask at inference
        Project(w, proj, a, n, l, Projection.Down, s);
        _ops.Add(x, hres, proj, (long)n * h);
        _device.PopRange();
    }

    /// <summary>y[n,out] = x·Wᵀ (+ b) (cuBLAS), then the rows' adapters through the pool (decode: BGMV per row; prefill and
    /// forward: one SGMV segment); rows of slot −1 keep y.</summary>
    private void Project(Work w, DevicePtr y, DevicePtr x, int n, int l, Projection p, in Step s)
    {
        var lw = _model.Layers[l];
        var weight = lw.Weight(p);
        int inDim = weight.Shape[1], outDim = weight.Shape[0];
        _ops.MatmulNT(y, x, _base.Weight(weight), n, inDim, outDim, accumulate: false);
        if (lw.Bias(p) is { } bias) _ops.BiasAdd(y, _base.Weight(bias), n, outDim);
        if (!s.Lora || !_pool.Adapts(l, p)) return;
        var (a, b, scaling) = _pool.Module(l, p);
        var t = At(w, w.T);
        if (s.Mode == Attend.Decode)
        {
            // Decode rows each name their adapter slot (BGMV: one block per row).
            var rowSlot = Ints(w, 3, n);
            _ops.BgmvShrink(t, x, a, rowSlot, n, inDim, _pool.Rank, _pool.SlotStrideBf16);
            _ops.BgmvExpand(y, t, b, scaling, rowSlot, n, outDim, _pool.Rank, _pool.SlotStrideBf16, _pool.ScaleStride);
            return;
        }
        // A prefill or full forward is one adapter over all rows: one SGMV segment, the adapter's weights staged in
        // shared memory once per 16 rows instead of read once per row.
        DevicePtr segStart = Ints(w, 4, n), segSlot = segStart.OffsetBytes(8);
        _ops.SgmvShrink(t, x, a, segStart, segSlot, 1, n, inDim, _pool.Rank, _pool.SlotStrideBf16);
        _ops.SgmvExpand(y, t, b, scaling, segStart, segSlot, 1, n, outDim, _pool.Rank, _pool.SlotStrideBf16, _pool.ScaleStride);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            DropGraphs();
            _pool.Dispose();
            if (_decode is not null) _device.Free(_decodeBase);
            if (_prefill is not null) _device.Free(_prefillBase);
            if (!_kv.IsNull) _device.Free(_kv);
            if (_staging != 0) { _device.FreeHost(_staging); _device.FreeHost(_pinnedLogits); }
            _base.Dispose(); // frees the weights and, when owned, the device
        }
    }
}

/// <summary>The device slots of one <see cref="KvCache"/> (one per row, −1 until first use), given back on dispose or collection.</summary>
internal sealed class CudaKvSlots : IDisposable
{
    internal CudaKvSlots(CudaKvDecoder owner, int rows)
    {
        Owner = owner;
        Slots = new int[rows];
        Array.Fill(Slots, -1);
    }

    public CudaKvDecoder Owner { get; }
    public int[] Slots { get; }

    public void Dispose()
    {
        Owner.Release(this);
        GC.SuppressFinalize(this);
    }

    ~CudaKvSlots() => Owner.Release(this);
}

/// <summary>
/// The inference contract (<see cref="IInferenceModel"/>) for one adapter (or the base) on a session's shared
/// <see cref="CudaKvDecoder"/>: KV-cached prefill and decode with the cache on the device, a full forward with
/// logits and hidden states, and the loss. Holds no state of its own.
/// </summary>
internal sealed class CudaKvInference(CudaKvDecoder decoder, LoraAdapter? adapter) : IInferenceModel
{
    public CudaKvDecoder Decoder => decoder;
    public LoraAdapter? Adapter => adapter;
    public ModelConfig Config => decoder.Config;
    public int MaxPositions => decoder.MaxPositions;

    public KvCache CreateCache(int batchSize, int capacity) => decoder.CreateCache(batchSize, capacity);

    public void Prefill(KvCache cache, ReadOnlySpan<int> ids, int b, int t, Span<float> lastLogits) => decoder.Prefill(cache, ids, b, t, adapter, lastLogits);

    public void Decode(KvCache cache, ReadOnlySpan<int> ids, Span<float> logits) => decoder.Decode(cache, ids, adapter, logits);

    public void Forward(ReadOnlySpan<int> ids, int b, int t, Span<float> logits, Span<float> hidden, ref object? scratch) =>
        decoder.Forward(ids, b, t, adapter, logits, hidden);

    public (double LossSum, int Counted) Loss(TokenBatch batch, ref object? scratch) => decoder.Loss(batch, adapter);
}
