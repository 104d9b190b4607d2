using TransPeft.Engine.Compute;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Sessions;

/// <summary>One request's state in a <see cref="BatchedGenerator"/>: its adapter, KV cache and sampler.</summary>
public sealed class BatchSequence
{
    internal BatchSequence(AdapterEntry? served, KvCache cache, GenerationOptions options, int promptLength)
    {
        Served = served;
        Cache = cache;
        Options = options;
        Rng = new Random(options.Seed);
        PromptLength = promptLength;
    }

    /// <summary>The adapter the request runs with (null: the base model).</summary>
    public string? Adapter => Served?.Name;

    internal AdapterEntry? Served { get; }
    internal KvCache Cache { get; }
    internal GenerationOptions Options { get; }
    internal Random Rng { get; }
    internal int PromptLength { get; }
}

/// <summary>
/// Many requests over one session's base model, each with its own adapter or none, generated together by continuous
/// batching (<see cref="ContinuousBatcher{TSequence}"/>) on the CPU or the CUDA backend. Each step prefills the prompt chunks of
/// new requests one sequence at a time (the adapter's own backend, <see cref="IInferenceModel.Prefill"/>) and decodes
/// every running request in ONE mixed-adapter step (<see cref="CpuMixedDecoder"/>: the base weights streamed once for
/// all rows, LoRA per adapter segment, rows sorted by adapter). A request gets exactly the tokens it gets alone
/// (greedy; sampled with the same seed too). Adapters come from the session's <see cref="AdapterSet"/> and may be
/// loaded, replaced (in place for the same shape) and unloaded while requests run.
/// <para>Threading: <see cref="Submit"/> from any thread; <see cref="RunAsync"/> (or the batcher's Step) on one.</para>
/// </summary>
public sealed class BatchedGenerator
{
    private readonly InferenceSession _session;
    private readonly CpuMixedDecoder? _decoder;
    private readonly CudaKvDecoder? _cuda;
    private float[] _logits = [];
    private float[] _prefillLogits = [];
    private int[] _sampleIdx = [];      // sampling's work arrays (length V), kept so a sampled row allocates nothing per step
    private double[] _sampleP = [];
    // The CPU mixed step's work lists, kept between steps: decode rows, their order by adapter, each slot's adapter and image.
    private readonly List<int> _decodeRows = [];
    private readonly List<AdapterEntry> _slotEntries = [];
    private readonly List<CpuLoraImage?> _images = [];
    private int[] _rowSlot = [], _order = [], _ids = [], _slots = [];
    private KvCache[] _caches = [];
    private LoraAdapter?[] _rowAdapters = []; // CUDA: each decode row's adapter

    /// <summary>A batched generator over <paramref name="session"/>: on the CPU the mixed step is
    /// <see cref="CpuMixedDecoder"/>; on CUDA the session's KV-cached decoder runs every decode row in one step, each
    /// row's adapter through the device adapter pool (BGMV), and each request holds one device KV slot while it runs
    /// (so <see cref="BatcherOptions.MaxBatchRequests"/> must not exceed <see cref="SessionOptions.MaxBatchSize"/>).</summary>
    public BatchedGenerator(InferenceSession session, BatcherOptions? options = null)
    {
        _session = session;
        if (session.IsCuda)
        {
            int requests = (options ?? new BatcherOptions()).MaxBatchRequests;
            if (requests > session.Options.MaxBatchSize)
                throw new ArgumentException($"BatcherOptions.MaxBatchRequests {requests} exceeds the session's {session.Options.MaxBatchSize} device KV cache slots (SessionOptions.MaxBatchSize)");
            _cuda = session.CudaDecoder;
        }
        else
        {
            _decoder = new CpuMixedDecoder(session.Model, session.MaxSequenceLength);
            session.ServesBatches(); // every served adapter's CPU image is built now, and each later one's when it is loaded
        }
        Batcher = new ContinuousBatcher<BatchSequence>(Step, options);
    }

    public ModelConfig Config => _session.Config;
    public InferenceSession Session => _session;
    /// <summary>The session's adapters: the names requests may use.</summary>
    public AdapterSet Adapters => _session.Adapters;
    /// <summary>The scheduler (limits, queue lengths, <see cref="ContinuousBatcher{TSequence}.StepCompleted"/>).</summary>
    public ContinuousBatcher<BatchSequence> Batcher { get; }
    /// <summary>Most positions a request may reach, prompt and generated tokens together.</summary>
    public int MaxSequenceLength => _session.MaxSequenceLength;

    /// <summary>
    /// Queues a request. <paramref name="adapter"/> names a loaded adapter, or null for the base model. Stops at
    /// <see cref="GenerationOptions.MaxNewTokens"/> (clamped to the room left under <see cref="MaxSequenceLength"/>) or
    /// an EOS id (<see cref="GenerationOptions.EosTokenIds"/>, else the model's). Stop strings are the caller's (they need text).
    /// </summary>
    public BatchRequest<BatchSequence> Submit(IReadOnlyList<int> prompt, string? adapter, GenerationOptions options, CancellationToken cancel = default)
    {
        options.Validate();
        if (prompt.Count == 0) throw new ArgumentException("the prompt must hold at least one token");
        if (prompt.Count >= MaxSequenceLength)
            throw new ArgumentException($"prompt of {prompt.Count} tokens leaves no room under the maximum sequence length {MaxSequenceLength}");
        for (int i = 0; i < prompt.Count; i++)
            if ((uint)prompt[i] >= (uint)Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(prompt), $"prompt[{i}] = {prompt[i]} is outside the vocabulary [0, {Config.VocabSize})");
        var served = adapter is null ? null : Adapters.Resolve(adapter);
        int maxNew = Math.Min(Math.Max(options.MaxNewTokens, 1), MaxSequenceLength - prompt.Count);
        // The last generated token is never fed back, so the cache needs prompt + maxNew - 1 positions.
        var cache = Backend(served).CreateCache(1, prompt.Count + maxNew - 1);
        var sequence = new BatchSequence(served, cache, options, prompt.Count);
        var request = new BatchRequest<BatchSequence>(sequence, prompt, maxNew, options.EosTokenIds ?? Config.EosTokenIds, cancel);
        // However the request ends, its cache goes (on CUDA, its device KV slot goes back to the session).
        request.Completion.ContinueWith(_ => cache.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        Batcher.Submit(request);
        return request;
    }

    /// <summary>Runs the batcher until it is closed and drained, or <paramref name="stop"/> fires.</summary>
    public Task RunAsync(CancellationToken stop = default) => Batcher.RunAsync(stop);

    /// <summary>One forward step over the batcher's rows: prompt chunks per sequence, then every decode row in one mixed step.</summary>
    private void Step(ReadOnlySpan<BatchRow<BatchSequence>> rows, Span<int> next)
    {
        int v = Config.VocabSize;
        if (_prefillLogits.Length < v) { _prefillLogits = new float[v]; _sampleIdx = new int[v]; _sampleP = new double[v]; }
        using var threads = CpuParallel.Use(_session.Options.Threads);
        lock (Adapters.SwapGate)
        {
            var decodeRows = _decodeRows;
            decodeRows.Clear();
            for (int i = 0; i < rows.Length; i++)
            {
                var row = rows[i];
                if (row.Position >= row.Sequence.PromptLength) { decodeRows.Add(i); continue; }
                // A prompt chunk: the sequence's own single-adapter cached forward (one sequence, T tokens).
                Backend(row.Sequence.Served).Prefill(row.Sequence.Cache, row.Tokens.Span, 1, row.Tokens.Length, _prefillLogits.AsSpan(0, v));
                if (row.Sample) next[i] = Pick(_prefillLogits.AsSpan(0, v), row.Sequence);
            }
            if (decodeRows.Count == 0) return;
            if (_cuda is not null)
            {
                DecodeOnCuda(rows, decodeRows, next);
                return;
            }

            // Sort decode rows by adapter (stable) so each adapter is one segment of the mixed step.
            int n = decodeRows.Count;
            if (_rowSlot.Length < n) { _rowSlot = new int[n]; _order = new int[n]; _slots = new int[n]; }
            if (_ids.Length < n) { _ids = new int[n]; _caches = new KvCache[n]; }
            if (_logits.Length < n * v) _logits = new float[n * v];
            try
            {
                for (int j = 0; j < n; j++) _rowSlot[j] = SlotOf(rows[decodeRows[j]].Sequence.Served);
                int k = 0; // _order[k]: the k-th row of the step, as a batcher row index
                for (int slot = -1; slot < _slotEntries.Count; slot++)
                    for (int j = 0; j < n; j++)
                        if (_rowSlot[j] == slot) { _order[k] = decodeRows[j]; _slots[k++] = slot; }
                for (int j = 0; j < n; j++)
                {
                    var row = rows[_order[j]];
                    _ids[j] = row.Tokens.Span[0];
                    _caches[j] = row.Sequence.Cache;
                }
                _decoder!.Decode(_ids.AsSpan(0, n), _caches.AsSpan(0, n), _slots.AsSpan(0, n), _images, _logits);
            }
            finally
            {
                // Hold nothing of this step between steps: an idle server must not keep finished requests' caches or
                // unloaded adapters' images alive.
                Array.Clear(_caches, 0, n);
                _images.Clear();
                _slotEntries.Clear();
            }
            for (int j = 0; j < n; j++)
                if (rows[_order[j]].Sample) next[_order[j]] = Pick(_logits.AsSpan(j * v, v), rows[_order[j]].Sequence);
        }
    }

    /// <summary>The mixed step's slot of a row's adapter (-1: none), adding the adapter and its image on first sight this
    /// step. A linear search: a step has at most a few dozen distinct adapters.</summary>
    private int SlotOf(AdapterEntry? served)
    {
        if (served is null) return -1;
        for (int s = 0; s < _slotEntries.Count; s++)
            if (ReferenceEquals(_slotEntries[s], served)) return s;
        _slotEntries.Add(served);
        _images.Add(served.CpuImage);
        return _slotEntries.Count - 1;
    }

    /// <summary>Every decode row in one CUDA step, in the batcher's order: BGMV reads each row's adapter slot, so
    /// rows need no sorting by adapter.</summary>
    private void DecodeOnCuda(ReadOnlySpan<BatchRow<BatchSequence>> rows, List<int> decodeRows, Span<int> next)
    {
        int n = decodeRows.Count, v = Config.VocabSize;
        if (_ids.Length < n) { _ids = new int[n]; _caches = new KvCache[n]; _rowAdapters = new LoraAdapter?[n]; }
        if (_logits.Length < n * v) _logits = new float[n * v];
        try
        {
            for (int j = 0; j < n; j++)
            {
                var row = rows[decodeRows[j]];
                _ids[j] = row.Tokens.Span[0];
                _caches[j] = row.Sequence.Cache;
                _rowAdapters[j] = row.Sequence.Served?.Adapter;
            }
            _cuda!.DecodeMixed(_ids.AsSpan(0, n), _caches.AsSpan(0, n), _rowAdapters.AsSpan(0, n), _logits);
        }
        finally
        {
            Array.Clear(_caches, 0, n); // as on the CPU: nothing of this step is held between steps
            Array.Clear(_rowAdapters, 0, n);
        }
        for (int j = 0; j < n; j++)
            if (rows[decodeRows[j]].Sample) next[decodeRows[j]] = Pick(_logits.AsSpan(j * v, v), rows[decodeRows[j]].Sequence);
    }

    private IInferenceModel Backend(AdapterEntry? served) => served?.Backend ?? _session.BackendFor(null);

    private int Pick(ReadOnlySpan<float> logits, BatchSequence s) =>
        s.Options.Greedy ? Sampling.ArgMax(logits) : Sampling.Sample(logits, s.Options, s.Rng, _sampleIdx, _sampleP);
}
