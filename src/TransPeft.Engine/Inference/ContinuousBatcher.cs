using System.Diagnostics;

namespace TransPeft.Engine.Inference;

/// <summary>
/// Continuous (iteration-level) batching, as in Orca and vLLM: requests join and leave the running batch at every
/// step. Each step, in this order:
/// <list type="number">
/// <item>requests whose token was cancelled leave (their stream ends with <see cref="OperationCanceledException"/>);</item>
/// <item>every decoding request feeds its last token (one token each: a running request never waits);</item>
/// <item>requests still in prefill, oldest first, feed their next prompt chunk within the remaining token budget;</item>
/// <item>waiting requests join in arrival order while a request slot and budget remain; the oldest waiting request
/// is never passed by a younger one (strict FIFO).</item>
/// </list>
/// No request starves: a running request advances every step and finishes within its token limit, freeing its slot,
/// and because the token budget exceeds the request limit the oldest waiting request always gets a chunk once a slot
/// is free. A request ends when it produced <see cref="BatchRequest{TSequence}.MaxNewTokens"/> tokens or a stop
/// token (which is delivered). The batcher owns no model: the step function does the forward.
/// <para>Thread safety: <see cref="Submit"/> and <see cref="Close"/> from any thread; <see cref="Step"/> from one
/// thread at a time (<see cref="RunAsync"/> is that thread).</para>
/// </summary>
public sealed class ContinuousBatcher<TSequence>
{
    private readonly BatchStepFunction<TSequence> _step;
    private readonly object _lock = new();
    private readonly Queue<BatchRequest<TSequence>> _waiting = new();
    private readonly List<BatchRequest<TSequence>> _running = [];
    private readonly SemaphoreSlim _signal = new(0);
    private bool _closed;

    public BatcherOptions Options { get; }

    /// <summary>Raised after every step that ran, on the stepping thread.</summary>
    public event Action<BatchStepInfo>? StepCompleted;

    public ContinuousBatcher(BatchStepFunction<TSequence> step, BatcherOptions? options = null)
    {
        _step = step;
        Options = options ?? new BatcherOptions();
        Options.Validate();
    }

    /// <summary>Requests waiting to join.</summary>
    public int WaitingCount { get { lock (_lock) return _waiting.Count; } }

    /// <summary>Requests in the running batch (prefilling or decoding).</summary>
    public int RunningCount { get { lock (_lock) return _running.Count; } }

    /// <summary>True after <see cref="Close"/>: no request is accepted any more.</summary>
    public bool IsClosed { get { lock (_lock) return _closed; } }

    /// <summary>Queues a request (FIFO). Throws <see cref="InvalidOperationException"/> after <see cref="Close"/>.</summary>
    public void Submit(BatchRequest<TSequence> request)
    {
        lock (_lock)
        {
            if (_closed) throw new InvalidOperationException("the batcher is shutting down and takes no new requests");
            if (request.Submitted) throw new InvalidOperationException("this request was already submitted");
            request.Submitted = true;
            _waiting.Enqueue(request);
        }
        _signal.Release();
    }

    /// <summary>Stops taking requests; the ones queued or running go on until they finish or are cancelled.</summary>
    public void Close()
    {
        lock (_lock) _closed = true;
        _signal.Release();
    }

    /// <summary>Cancels every queued and running request (shutdown past its grace period).</summary>
    public void CancelAll()
    {
        List<BatchRequest<TSequence>> all;
        lock (_lock)
        {
            all = [.. _waiting, .. _running];
            _waiting.Clear();
            _running.Clear();
        }
        foreach (var r in all) r.End(BatchFinish.Cancelled, new OperationCanceledException("the server is shutting down"));
    }

    /// <summary>Runs one step. Returns false when there was nothing to run.</summary>
    public bool Step()
    {
        var rows = new List<BatchRow<TSequence>>();
        var owners = new List<BatchRequest<TSequence>>();
        int prefilling = 0;
        lock (_lock)
        {
            DropCancelled();
            int budget = Options.MaxBatchTokens;
            foreach (var r in _running)
                if (r.Decoding)
                {
                    rows.Add(new BatchRow<TSequence>(r.Sequence, new[] { r.LastToken }, r.Position, true));
                    owners.Add(r);
                    budget--;
                }
            foreach (var r in _running)
                if (!r.Decoding && budget > 0) budget -= AddPrefillChunk(r, budget, rows, owners, ref prefilling);
            while (_waiting.Count > 0 && _running.Count < Options.MaxBatchRequests && budget > 0)
            {
                var r = _waiting.Dequeue();
                _running.Add(r);
                budget -= AddPrefillChunk(r, budget, rows, owners, ref prefilling);
            }
        }
        if (rows.Count == 0) return false;

        var next = new int[rows.Count];
        var sw = Stopwatch.StartNew();
        try
        {
            _step(rows.ToArray(), next);
        }
        catch (Exception e)
        {
            lock (_lock) foreach (var r in owners.Distinct()) _running.Remove(r);
            foreach (var r in owners.Distinct()) r.End(BatchFinish.Failed, e);
            StepCompleted?.Invoke(new BatchStepInfo(owners.Count, rows.Sum(x => x.Tokens.Length), prefilling, sw.Elapsed));
            return true;
        }
        var finished = new List<BatchRequest<TSequence>>();
        for (int i = 0; i < rows.Count; i++)
        {
            var r = owners[i];
            r.Position += rows[i].Tokens.Length;
            if (!rows[i].Sample) continue;
            if (r.Emit(next[i])) finished.Add(r);
        }
        lock (_lock) foreach (var r in finished) _running.Remove(r);
        foreach (var r in finished) r.End(r.Finish ?? BatchFinish.Length, null);
        StepCompleted?.Invoke(new BatchStepInfo(owners.Count, rows.Sum(x => x.Tokens.Length), prefilling, sw.Elapsed));
        return true;
    }

    /// <summary>Feeds the next prompt chunk of <paramref name="r"/> (at most <paramref name="budget"/> tokens); returns its size.</summary>
    private static int AddPrefillChunk(BatchRequest<TSequence> r, int budget, List<BatchRow<TSequence>> rows, List<BatchRequest<TSequence>> owners, ref int prefilling)
    {
        int fed = r.Position, left = r.Prompt.Length - fed, take = Math.Min(left, budget);
        rows.Add(new BatchRow<TSequence>(r.Sequence, r.Prompt.AsMemory(fed, take), fed, take == left));
        owners.Add(r);
        prefilling++;
        return take;
    }

    private void DropCancelled()
    {
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i].CancellationToken.IsCancellationRequested)
            {
                _running[i].End(BatchFinish.Cancelled, new OperationCanceledException(_running[i].CancellationToken));
                _running.RemoveAt(i);
            }
        if (!_waiting.Any(r => r.CancellationToken.IsCancellationRequested)) return;
        var keep = new List<BatchRequest<TSequence>>();
        while (_waiting.Count > 0)
        {
            var r = _waiting.Dequeue();
            if (r.CancellationToken.IsCancellationRequested) r.End(BatchFinish.Cancelled, new OperationCanceledException(r.CancellationToken));
            else keep.Add(r);
        }
        foreach (var r in keep) _waiting.Enqueue(r);
    }

    /// <summary>
    /// Steps while there is work; waits for requests otherwise. Returns once <see cref="Close"/> was called and every
    /// request has ended, or when <paramref name="stop"/> fires (then the remaining requests are cancelled).
    /// </summary>
    public async Task RunAsync(CancellationToken stop = default)
    {
        try
        {
            while (true)
            {
                stop.ThrowIfCancellationRequested();
                if (Step()) continue;
                lock (_lock) if (_closed && _waiting.Count == 0 && _running.Count == 0) return;
                // Nothing runnable: wait for a submission, a close, or (for cancellations of queued requests) a short tick.
                await _signal.WaitAsync(TimeSpan.FromMilliseconds(50), stop).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            CancelAll();
        }
    }
}
