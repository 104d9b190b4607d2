using TransPeft.Engine.Model;

namespace TransPeft.Engine.Inference;

/// <summary>
/// Keys and values of every layer for B sequences, [B, Capacity, nkv, d] each, keys stored after RoPE.
/// <see cref="Length"/> positions are filled; a decode step appends to every row at once.
/// </summary>
public sealed class KvCache
{
    public int BatchSize { get; }
    public int Capacity { get; }
    public int Length { get; internal set; }
    internal float[][] K { get; }
    internal float[][] V { get; }

    public KvCache(ModelConfig config, int batchSize, int capacity)
    {
        if (capacity > config.MaxPositionEmbeddings)
            throw new ArgumentOutOfRangeException(nameof(capacity), $"KV cache capacity {capacity} exceeds max_position_embeddings {config.MaxPositionEmbeddings}");
        BatchSize = batchSize; Capacity = capacity;
        int size = batchSize * capacity * config.KvDim;
        K = new float[config.NumLayers][]; V = new float[config.NumLayers][];
        for (int l = 0; l < config.NumLayers; l++) { K[l] = new float[size]; V[l] = new float[size]; }
    }

    public void Reset() => Length = 0;
}
