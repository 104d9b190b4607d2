using System.Runtime.CompilerServices;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Text;

namespace TransPeft.Cli.Serve;

/// <summary><see cref="IServeEngine"/> on the engine's <see cref="BatchedGenerator"/> (CPU, continuous batching, mixed adapters).</summary>
internal sealed class BatchedServeEngine : IServeEngine
{
    private readonly BatchedGenerator _generator;
    private readonly TokenizerInfo? _tokenizer;

    public BatchedServeEngine(InferenceSession session, string name, ChatFormat? chat, BatcherOptions options, ServeMetrics metrics)
    {
        _generator = new BatchedGenerator(session, options);
        _tokenizer = session.Tokenizer;
        BaseModelName = name;
        Chat = chat;
        _generator.Batcher.StepCompleted += s => metrics.BatchSize.Observe(s.Requests);
    }

    public string BaseModelName { get; }
    public int VocabSize => _generator.Config.VocabSize;
    public int MaxSequenceLength => _generator.MaxSequenceLength;
    public bool HasTokenizer => _tokenizer is not null;
    public ChatFormat? Chat { get; }
    public IReadOnlyList<(string Name, string? Source)> Adapters => _generator.Adapters.List();
    public bool HasAdapter(string name) => _generator.Adapters.Contains(name);
    public (int Running, int Waiting) Load => (_generator.Batcher.RunningCount, _generator.Batcher.WaitingCount);

    public TimeSpan LoadAdapter(string name, string dir, bool replace) => _generator.Adapters.Load(name, dir, replace).Elapsed;

    public InferenceSession Session => _generator.Session;

    public bool UnloadAdapter(string name) => _generator.Adapters.Unload(name);

    public int[] Encode(string text)
    {
        var tok = _tokenizer ?? throw new ServeError(400, "this model has no tokenizer: send token ids");
        return tok.EncodePrompt(text);
    }

    public string Decode(IReadOnlyList<int> ids) => _tokenizer!.Tokenizer.Decode(ids.Where(i => i < _tokenizer.VocabSize));

    public IGenerationStream Submit(GenerationJob job, CancellationToken cancel)
    {
        var options = new GenerationOptions
        {
            MaxNewTokens = job.MaxTokens, Greedy = job.Temperature == 0, Temperature = job.Temperature == 0 ? 1 : job.Temperature,
            TopP = job.TopP, Seed = job.Seed, EosTokenIds = _generator.Session.EosTokenIds,
        };
        try { return new Stream(_generator.Submit(job.Prompt, job.Adapter, options, cancel)); }
        catch (InvalidOperationException) { throw new ServeError(503, "the server is shutting down"); }
        catch (KeyNotFoundException e) { throw new ServeError(404, e.Message, "model", "model_not_found"); }
        catch (ArgumentException e) { throw ServeError.BadRequest(e.Message, "prompt"); }
    }

    public Task RunAsync(CancellationToken stop) => _generator.RunAsync(stop);

    public void Close() => _generator.Batcher.Close();

    public ValueTask DisposeAsync()
    {
        _generator.Batcher.CancelAll();
        _generator.Session.Dispose();
        return ValueTask.CompletedTask;
    }

    private sealed class Stream(BatchRequest<BatchSequence> request) : IGenerationStream
    {
        public string FinishReason => request.Completion.IsCompletedSuccessfully && request.Completion.Result == BatchFinish.Stop ? "stop" : "length";

        public async IAsyncEnumerable<int> Tokens([EnumeratorCancellation] CancellationToken cancel)
        {
            await foreach (var t in request.ReadAllAsync(cancel).ConfigureAwait(false)) yield return t;
            await request.Completion.ConfigureAwait(false);
        }
    }
}
