using TransPeft.Engine.Model;

namespace TransPeft.Engine.Inference;

/// <summary>
/// Keys and values of every layer for B sequences, [B, Capacity, nkv, d] each, keys stored after RoPE.
/// <see cref="Length"/> positions are filled; a decode step appends to every row at once.
/// </summary>
public sealed class KvCache : IDisposable
{
    public int BatchSize { get; }
    public int Capacity { get; }
    public int Length { get; internal set; }
    internal float[][] K { get; }
    internal float[][] V { get; }

    public KvCache(ModelConfig config, int batchSize, int capacity) : this(config, batchSize, capacity, hostStorage: true) { }

    /// <param name="hostStorage">False for a backend that keeps keys and values elsewhere (its scratch): no host arrays.</param>
    internal KvCache(ModelConfig config, int batchSize, int capacity, bool hostStorage)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), $"KV cache batch size must be positive, got {batchSize}");
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache capacity must be positive, got {capacity}");
        if (capacity > config.MaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache capacity {capacity} exceeds max_position_embeddings {config.MaxPositionEmbeddings}");
        BatchSize = batchSize; Capacity = capacity;
        long size = (long)batchSize * capacity * config.KvDim;
        if (size > Array.MaxLength) throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache of {batchSize} x {capacity} positions x {config.KvDim} values exceeds one array");
        K = new float[config.NumLayers][]; V = new float[config.NumLayers][];
        if (!hostStorage) return;
        for (int l = 0; l < config.NumLayers; l++) { K[l] = new float[size]; V[l] = new float[size]; }
    }

    /// <summary>The backend's per-request working memory (activations, last-position rows), kept with the cache so a
    /// decode step reuses it and the shared model object holds no request state.</summary>
    internal object? Scratch { get; set; }

    /// <summary>Forgets every cached position (the memory is kept for the next request).</summary>
    public void Reset() => Length = 0;

    /// <summary>Gives back what the backend holds for this cache: a CUDA session's device KV slots (a CPU cache is
    /// managed memory only). Using the cache again takes slots again.</summary>
    public void Dispose()
    {
        Length = 0;
        (Scratch as IDisposable)?.Dispose();
    }
}
