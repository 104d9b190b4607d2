namespace TransPeft.Cli.Serve;

/// <summary>What one request asks the engine to generate, after the HTTP layer checked it.</summary>
internal sealed record GenerationJob(int[] Prompt, string? Adapter, int MaxTokens, double Temperature, double TopP, int Seed);

/// <summary>A running generation: tokens as they come, and why it ended ("length", "stop" for an EOS token).</summary>
internal interface IGenerationStream
{
    IAsyncEnumerable<int> Tokens(CancellationToken cancel);
    /// <summary>"length" or "stop" once <see cref="Tokens"/> has ended normally.</summary>
    string FinishReason { get; }
}

/// <summary>
/// The model side of <c>tpeft serve</c>: one base model, adapters by name, and a continuous batcher that runs the
/// requests. The HTTP layer (<see cref="ServeApp"/>) speaks only to this.
/// </summary>
internal interface IServeEngine : IAsyncDisposable
{
    /// <summary>The name clients use for the base model (the model folder's name).</summary>
    string BaseModelName { get; }
    int VocabSize { get; }
    /// <summary>Most positions a request may reach (prompt + generated).</summary>
    int MaxSequenceLength { get; }
    bool HasTokenizer { get; }
    /// <summary>The chat prompt format the tokenizer's chat template follows, or null (no chat endpoint).</summary>
    ChatFormat? Chat { get; }

    /// <summary>Loaded adapters, name and source folder, sorted by name.</summary>
    IReadOnlyList<(string Name, string? Source)> Adapters { get; }
    bool HasAdapter(string name);

    /// <summary>Loads (or with <paramref name="replace"/>, replaces) an adapter; returns how long the load took.</summary>
    TimeSpan LoadAdapter(string name, string dir, bool replace);
    bool UnloadAdapter(string name);

    int[] Encode(string text);
    string Decode(IReadOnlyList<int> ids);

    /// <summary>Queues a generation in the batcher (FIFO). Throws <see cref="ServeError"/> 503 once shutting down.</summary>
    IGenerationStream Submit(GenerationJob job, CancellationToken cancel);

    /// <summary>Requests running and waiting.</summary>
    (int Running, int Waiting) Load { get; }

    /// <summary>Runs the batcher until <see cref="Close"/> and the in-flight requests end, or <paramref name="stop"/> fires.</summary>
    Task RunAsync(CancellationToken stop);

    /// <summary>Takes no new requests; the ones in flight go on.</summary>
    void Close();
}
