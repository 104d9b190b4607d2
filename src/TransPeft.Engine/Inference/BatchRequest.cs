namespace TransPeft.Engine.Inference;

/// <summary>
/// A generation request for <see cref="ContinuousBatcher{TSequence}"/>: the caller's sequence state (KV cache,
/// adapter choice, sampler), the prompt, limits, and a cancellation token. Tokens arrive through
/// <see cref="ReadAllAsync"/> as they are produced; <see cref="Completion"/> ends with the reason.
/// </summary>
public sealed class BatchRequest<TSequence>
{
    private readonly System.Threading.Channels.Channel<int> _tokens =
        System.Threading.Channels.Channel.CreateUnbounded<int>(new() { SingleReader = true, SingleWriter = true });
    private readonly TaskCompletionSource<BatchFinish> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly HashSet<int> _stop;
    private int _ended;

    public BatchRequest(TSequence sequence, IReadOnlyList<int> prompt, int maxNewTokens, IEnumerable<int>? stopTokens = null,
        CancellationToken cancellationToken = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("the prompt must hold at least one token", nameof(prompt));
        if (maxNewTokens < 1) throw new ArgumentOutOfRangeException(nameof(maxNewTokens), $"max new tokens must be >= 1, got {maxNewTokens}");
        Sequence = sequence;
        Prompt = [.. prompt];
        MaxNewTokens = maxNewTokens;
        _stop = stopTokens is null ? [] : [.. stopTokens];
        CancellationToken = cancellationToken;
    }

    public TSequence Sequence { get; }
    public int[] Prompt { get; }
    public int MaxNewTokens { get; }
    public CancellationToken CancellationToken { get; }

    /// <summary>Tokens produced so far.</summary>
    public int Generated { get; private set; }

    /// <summary>Completes with why the request ended; faults with the step's exception when it failed, and is
    /// cancelled when the request was.</summary>
    public Task<BatchFinish> Completion => _done.Task;

    /// <summary>The produced tokens, as they come. Ends when the request ends (throws when it failed or was cancelled).</summary>
    public IAsyncEnumerable<int> ReadAllAsync(CancellationToken cancellationToken = default) => _tokens.Reader.ReadAllAsync(cancellationToken);

    internal bool Submitted { get; set; }
    internal int Position { get; set; }
    internal int LastToken { get; private set; }
    internal bool Decoding => Generated > 0;
    internal BatchFinish? Finish { get; private set; }

    /// <summary>Delivers a token; true when the request is complete.</summary>
    internal bool Emit(int token)
    {
        LastToken = token;
        Generated++;
        _tokens.Writer.TryWrite(token);
        if (_stop.Contains(token)) Finish = BatchFinish.Stop;
        return Finish is not null || Generated >= MaxNewTokens;
    }

    internal void End(BatchFinish finish, Exception? error)
    {
        if (Interlocked.Exchange(ref _ended, 1) != 0) return;
        Finish = finish;
        _tokens.Writer.TryComplete(error);
        if (finish == BatchFinish.Cancelled) _done.TrySetCanceled(CancellationToken.IsCancellationRequested ? CancellationToken : new CancellationToken(true));
        else if (error is not null) _done.TrySetException(error);
        else _done.TrySetResult(finish);
    }
}
