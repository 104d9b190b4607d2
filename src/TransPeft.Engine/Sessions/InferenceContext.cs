using System.Diagnostics;
using System.Runtime.CompilerServices;
using TransPeft.Engine.Compute;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Sessions;

/// <summary>
/// One request's state over a shared <see cref="InferenceSession"/> (LLamaSharp's context, ORT GenAI's
/// generator): the adapter it uses, its KV cache and working memory, sized on first use and reused by the next
/// request. Use a context from one thread at a time (a second concurrent call throws); make one per concurrent
/// request. Cheap to create; keep it for many requests to avoid re-allocating the cache.
/// </summary>
public sealed class InferenceContext : IDisposable
{
    private readonly InferenceSession _session;
    private KvCache? _cache;
    private object? _scratch;
    private GenerationLoop? _loop;
    private IInferenceModel? _loopModel;
    private int _busy;

    internal InferenceContext(InferenceSession session, string? adapter)
    {
        _session = session;
        Adapter = adapter;
    }

    public InferenceSession Session => _session;

    /// <summary>The adapter this context's requests use (null: the base model).</summary>
    public string? Adapter { get; private set; }

    /// <summary>Chooses the adapter of the next requests; throws when <paramref name="adapter"/> is not loaded.</summary>
    public void UseAdapter(string? adapter)
    {
        if (adapter is not null) _session.Adapters.Resolve(adapter);
        Adapter = adapter;
    }

    /// <summary>The text's token ids with the tokenizer's BOS when its model expects one; needs a tokenizer.</summary>
    public int[] Encode(string text)
    {
        return RequireTokenizer("encoding text").EncodePrompt(text);
    }

    public string Decode(IEnumerable<int> ids) => RequireTokenizer("decoding ids").Tokenizer.Decode(ids);

    private TokenizerInfo RequireTokenizer(string what) => _session.Tokenizer
        ?? throw new InvalidOperationException($"{what} needs a tokenizer, and {_session.ModelPath ?? "this session's model"} has none; use token ids");

    /// <summary>Per-token log-probabilities of <paramref name="ids"/> (each token given the ones before it) and their mean loss.</summary>
    public ScoreResult Score(IReadOnlyList<int> ids)
    {
        if (ids.Count < 2) throw new ArgumentException($"scoring needs at least 2 tokens (each is scored given the ones before it), got {ids.Count}");
        using var _ = Enter();
        var model = _session.BackendFor(Adapter);
        CheckRequest(1, ids.Count);
        int t = ids.Count, v = model.Config.VocabSize;
        var logits = new float[(long)t * v <= Array.MaxLength ? t * v : throw new ArgumentException($"{t} positions x {v} logits exceed one array")];
        using (_session.Adapters.EnterStep()) model.Forward(AsArray(ids), 1, t, logits, default, ref _scratch);
        var logProbs = new float[t - 1];
        for (int i = 0; i < t - 1; i++) logProbs[i] = (float)Sampling.LogSoftmaxAt(logits.AsSpan(i * v, v), ids[i + 1]);
        return new ScoreResult(ids, logProbs);
    }

    /// <summary>Full forward over <paramref name="batchSize"/> rows of equal length laid end to end in <paramref name="ids"/>.</summary>
    public ForwardResult Forward(IReadOnlyList<int> ids, int batchSize = 1, ForwardOutputs outputs = ForwardOutputs.Logits)
    {
        if (batchSize <= 0 || ids.Count % batchSize != 0)
            throw new ArgumentException($"{ids.Count} ids do not split into {batchSize} rows of equal length");
        if ((outputs & (ForwardOutputs.Logits | ForwardOutputs.HiddenStates)) == 0) throw new ArgumentException("forward: ask for logits, hidden states or both");
        using var _ = Enter();
        var model = _session.BackendFor(Adapter);
        int t = ids.Count / batchSize, n = ids.Count;
        CheckRequest(batchSize, t);
        var logits = outputs.HasFlag(ForwardOutputs.Logits) ? new float[checked(n * model.Config.VocabSize)] : null;
        var hidden = outputs.HasFlag(ForwardOutputs.HiddenStates) ? new float[checked(n * model.Config.HiddenSize)] : null;
        using (_session.Adapters.EnterStep()) model.Forward(AsArray(ids), batchSize, t, logits, hidden, ref _scratch);
        return new ForwardResult(batchSize, t, logits, hidden);
    }

    /// <summary>Sum of cross-entropy over counted targets of a batch (labels shifted by one; -100 not counted) and their number.</summary>
    public (double LossSum, int Counted) Loss(TokenBatch batch)
    {
        using var _ = Enter();
        CheckRequest(batch.BatchSize, batch.SeqLen);
        var model = _session.BackendFor(Adapter);
        using (_session.Adapters.EnterStep()) return model.Loss(batch, ref _scratch);
    }

    /// <summary>
    /// The loss on a data file read by the training data loader (so the numbers are the ones training reports as
    /// validation loss): each record one sequence (no packing), truncated to the session's maximum sequence
    /// length, batched by length. Pre-tokenized records need no tokenizer.
    /// </summary>
    public DatasetScore ScoreFile(string path, DatasetFormat format = DatasetFormat.Auto, int batchSize = 8)
    {
        if (batchSize <= 0) throw new ArgumentException($"batch size: expected a positive number of records, got {batchSize}");
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
        var detected = format == DatasetFormat.Auto ? DatasetLoader.Detect(path) : format;
        var config = _session.Config;
        var dsTok = DatasetTokenizer.ForModel(_session.Tokenizer, config, _session.ModelPath ?? "(model)");
        int seqLen = _session.MaxSequenceLength;
        var (ds, report) = DatasetLoader.Load(path, detected, dsTok, seqLen, pack: false, cacheDir: null, vocabSize: config.VocabSize);
        var order = Enumerable.Range(0, ds.Count).OrderBy(ds.LengthOf).ToArray();
        double sum = 0;
        long counted = 0;
        int step = Math.Min(batchSize, _session.Options.MaxBatchSize);
        for (int s = 0; s < order.Length; s += step)
        {
            var idx = order.AsSpan(s, Math.Min(step, order.Length - s));
            var (ls, c) = Loss(BatchBuilder.Build(ds, idx, seqLen, padToSeqLen: false));
            sum += ls; counted += c;
        }
        if (counted == 0) throw new ArgumentException($"{ds.Name}: no counted target token to score");
        return new DatasetScore(path, report, ds.Count, sum, counted);
    }

    /// <summary>Generates to completion; see <see cref="GenerateAsync"/>.</summary>
    public GenerationResult Generate(IReadOnlyList<int> promptIds, GenerationOptions? options = null, CancellationToken cancel = default)
    {
        using var _ = Enter();
        var loop = StartLoop(promptIds, options ?? new GenerationOptions());
        var sw = Stopwatch.StartNew();
        while (Step(loop) >= 0) cancel.ThrowIfCancellationRequested();
        double seconds = sw.Elapsed.TotalSeconds;
        return new GenerationResult(loop.Output.ToArray(), loop.Text(), loop.StopReason!, seconds > 0 ? loop.Output.Count / seconds : 0);
    }

    /// <summary>
    /// Streams the continuation of <paramref name="promptIds"/> one token at a time: prefill, then one decode step per
    /// token, stopping at <see cref="GenerationOptions.MaxNewTokens"/>, an EOS id, a stop string or the maximum
    /// sequence length (the last item carries the reason). The work runs on the thread that asks for the next item
    /// (wrap in Task.Run to keep a UI thread free); <paramref name="cancel"/> is checked before every token.
    /// </summary>
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> promptIds, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        if (Interlocked.Exchange(ref _busy, 1) != 0) throw Busy();
        try
        {
            GenerationLoop loop;
            using (CpuParallel.Use(_session.Options.Threads)) loop = StartLoop(promptIds, options ?? new GenerationOptions());
            int index = 0;
            while (true)
            {
                cancel.ThrowIfCancellationRequested();
                int id;
                using (CpuParallel.Use(_session.Options.Threads)) id = Step(loop);
                if (id < 0) yield break;
                yield return new GeneratedToken(id, index++, loop.StopReason);
                if (loop.StopReason is not null) yield break;
            }
        }
        finally { Volatile.Write(ref _busy, 0); }
    }

    private GenerationLoop StartLoop(IReadOnlyList<int> promptIds, GenerationOptions options)
    {
        var model = _session.BackendFor(Adapter);
        if (_loop is null || !ReferenceEquals(_loopModel, model)) { _loop = new GenerationLoop(model, _session.Tokenizer?.Tokenizer); _loopModel = model; }
        CheckRequest(1, Math.Max(1, promptIds.Count));
        using (_session.Adapters.EnterStep()) _cache = _loop.Start(promptIds, options, _cache);
        return _loop;
    }

    /// <summary>One decode step under the step gate: an in-place adapter swap lands between two tokens, never inside one.</summary>
    private int Step(GenerationLoop loop)
    {
        using var _ = _session.Adapters.EnterStep();
        return loop.Step();
    }

    private void CheckRequest(int batch, int positions)
    {
        if (batch > _session.Options.MaxBatchSize)
            throw new ArgumentException($"batch of {batch} sequences exceeds SessionOptions.MaxBatchSize {_session.Options.MaxBatchSize}");
        if (positions > _session.MaxSequenceLength)
            throw new ArgumentException($"sequence length {positions} exceeds the session's maximum {_session.MaxSequenceLength}");
    }

    private static int[] AsArray(IReadOnlyList<int> ids) => ids as int[] ?? [.. ids];

    /// <summary>Marks the context busy and applies the session's thread count for the call.</summary>
    private CallScope Enter()
    {
        if (Interlocked.Exchange(ref _busy, 1) != 0) throw Busy();
        return new CallScope(this, CpuParallel.Use(_session.Options.Threads));
    }

    private static InvalidOperationException Busy() =>
        new("this InferenceContext is already running a request; use one context per concurrent request");

    private readonly struct CallScope(InferenceContext owner, CpuParallel.Scope threads) : IDisposable
    {
        public void Dispose()
        {
            threads.Dispose();
            Volatile.Write(ref owner._busy, 0);
        }
    }

    /// <summary>Drops the cache and working memory: managed memory on the CPU (the GC frees it), the device KV slots
    /// on CUDA (given back to the session now).</summary>
    public void Dispose()
    {
        _cache?.Dispose();
        _cache = null;
        _scratch = null;
        _loop = null;
    }
}
