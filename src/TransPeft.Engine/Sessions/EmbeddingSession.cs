using System.Collections.Concurrent;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Sessions;

/// <summary>How <see cref="EmbeddingSession.Embed"/> turns texts into vectors.</summary>
public sealed record EmbeddingOptions
{
    /// <summary>Mean over the valid tokens or the [CLS] vector; null: the model folder's (1_Pooling/config.json, else mean).</summary>
    public BertPooling? Pooling { get; init; }

    /// <summary>L2-normalise each vector (then a dot product is the cosine).</summary>
    public bool Normalize { get; init; }

    /// <summary>Tokens per text, [CLS] and [SEP] included; longer texts are cut (at most the session's MaxSequenceLength when set).</summary>
    public int MaxTokens { get; init; } = 256;
}

/// <summary>
/// A sentence-embedding session over a BERT encoder (an HF folder written by <c>tpeft import</c>, or a Hugging Face
/// cache entry): the <see cref="InferenceSession"/> of encoders. The loaded model is immutable and shared; the
/// session is thread-safe: each call borrows one of its embedders (activation buffers kept between calls), so N
/// threads embed concurrently and get exactly what the same calls give one after another. Texts are grouped into
/// padded batches of at most <see cref="SessionOptions.MaxBatchSize"/> (padding masked as attention keys and left
/// out of pooling). The encoder runs on the CPU backend; its CUDA kernels (kernels/bert.cu) are compiled and
/// emulator-checked but no CUDA encoder launches them yet, so <c>auto</c> runs on the CPU and says why, and
/// <c>cuda</c> is refused.
/// </summary>
public sealed class EmbeddingSession : IDisposable
{
    private readonly ConcurrentBag<BertEmbedder> _idle = [];
    private bool _disposed;

    private EmbeddingSession(BertModel model, SessionOptions options, string? fallback)
    {
        Model = model; Options = options; DeviceFallbackReason = fallback;
    }

    public BertModel Model { get; }
    public SessionOptions Options { get; }

    /// <summary>Why <c>auto</c> runs on the CPU; null when the CPU was asked for.</summary>
    public string? DeviceFallbackReason { get; }

    /// <summary>Length of each embedding (the encoder's hidden size).</summary>
    public int Dimension => Model.Config.HiddenSize;

    private const string NoCudaEncoder = "the BERT encoder runs on the CPU backend (its CUDA kernels are not yet driven by a CUDA encoder)";

    /// <summary>Loads the encoder from <paramref name="path"/> (folder or HF cache entry) with <paramref name="options"/>.</summary>
    public static EmbeddingSession Load(string path, SessionOptions? options = null)
    {
        options ??= new SessionOptions();
        options.Validate();
        var spec = DeviceSpec.Parse(options.Device);
        string? fallback = spec.Kind switch
        {
            DeviceKind.Cpu => null,
            DeviceKind.Auto => NoCudaEncoder,
            _ => throw new DeviceUnavailableException(spec.ToString(), NoCudaEncoder),
        };
        return new EmbeddingSession(BertModel.Load(ModelLocation.Resolve(path)), options, fallback);
    }

    /// <summary>One vector of <see cref="Dimension"/> floats per text, in order.</summary>
    public float[][] Embed(IReadOnlyList<string> texts, EmbeddingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(texts);
        options ??= new EmbeddingOptions();
        int maxTokens = Options.MaxSequenceLength > 0 ? Math.Min(options.MaxTokens, Options.MaxSequenceLength) : options.MaxTokens;
        if (maxTokens < 2) throw new ArgumentException($"EmbeddingOptions.MaxTokens: expected at least 2 ([CLS] and [SEP]), got {options.MaxTokens}");
        return WithEmbedder(e => e.Embed(texts, options.Pooling, options.Normalize, maxTokens, Options.MaxBatchSize));
    }

    /// <summary>Embeddings of already-tokenized sequences ([CLS] … [SEP] each), one padded batch per MaxBatchSize.</summary>
    public float[][] EmbedIds(IReadOnlyList<int[]> sequences, BertPooling? pooling = null)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        foreach (var s in sequences)
        {
            if (s.Length < 1 || s.Length > Model.Config.MaxPositionEmbeddings)
                throw new ArgumentException($"a sequence has {s.Length} tokens; expected 1..{Model.Config.MaxPositionEmbeddings} (max_position_embeddings)");
            foreach (var id in s)
                if ((uint)id >= (uint)Model.Config.VocabSize)
                    throw new ArgumentException($"token id {id} is outside the vocabulary (0..{Model.Config.VocabSize - 1})");
        }
        return WithEmbedder(e => e.EmbedIds(sequences, pooling, Options.MaxBatchSize));
    }

    private float[][] WithEmbedder(Func<BertEmbedder, float[][]> work)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_idle.TryTake(out var embedder)) embedder = new BertEmbedder(Model);
        try
        {
            using var _ = CpuParallel.Use(Options.Threads);
            return work(embedder);
        }
        finally { _idle.Add(embedder); }
    }

    public void Dispose()
    {
        _disposed = true;
        _idle.Clear();
    }
}
