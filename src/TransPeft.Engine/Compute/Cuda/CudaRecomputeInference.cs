using TransPeft.Engine.Inference;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The inference contract on the CUDA backend, for now by recomputation: the "cache" keeps the token ids on the
/// host and every prefill/decode runs the whole prefix through <see cref="CudaTransformer.ForwardLogits"/>, so
/// results equal the CPU's KV-cached path up to bf16 rounding but decode costs O(prefix) per token. A device KV
/// cache with a graph-replayed decode step is the next step (docs/API.md, "CUDA status"). Calls are serialised:
/// the CUDA model owns one activation arena and one stream.
/// </summary>
internal sealed class CudaRecomputeInference(CudaTransformer model) : IInferenceModel, IDisposable
{
    private readonly object _gate = new();

    public ModelConfig Config => model.Config;
    public int MaxPositions => model.MaxPositions;

    public KvCache CreateCache(int batchSize, int capacity) => new(Config, batchSize, capacity, hostStorage: false);

    private sealed class History(int rows, int capacity)
    {
        public readonly int[] Ids = new int[rows * capacity];
    }

    public void Prefill(KvCache cache, ReadOnlySpan<int> ids, int b, int t, Span<float> lastLogits)
    {
        if (b != cache.BatchSize) throw new ArgumentException($"batch {b} does not match the cache's {cache.BatchSize}");
        int pos0 = cache.Length;
        ModelRules.CheckBatch(Config, MaxPositions, ids.Length, b, t, pos0);
        ModelRules.CheckTokens(Config, ids);
        if (pos0 + t > cache.Capacity) throw new ArgumentException($"cache holds {cache.Capacity} positions; {pos0} used, {t} more requested");
        var h = cache.Scratch as History ?? new History(b, cache.Capacity);
        cache.Scratch = h;
        for (int r = 0; r < b; r++) ids.Slice(r * t, t).CopyTo(h.Ids.AsSpan(r * cache.Capacity + pos0));
        int len = pos0 + t, v = Config.VocabSize;
        var packed = new int[b * len];
        for (int r = 0; r < b; r++) h.Ids.AsSpan(r * cache.Capacity, len).CopyTo(packed.AsSpan(r * len));
        float[] logits;
        lock (_gate) logits = model.ForwardLogits(packed, b, len);
        for (int r = 0; r < b; r++) logits.AsSpan(((r * len) + len - 1) * v, v).CopyTo(lastLogits.Slice(r * v, v));
        cache.Length = len;
    }

    public void Decode(KvCache cache, ReadOnlySpan<int> ids, Span<float> logits) => Prefill(cache, ids, cache.BatchSize, 1, logits);

    public void Forward(ReadOnlySpan<int> ids, int b, int t, Span<float> logits, Span<float> hidden, ref object? scratch)
    {
        ModelRules.CheckBatch(Config, MaxPositions, ids.Length, b, t);
        ModelRules.CheckTokens(Config, ids);
        if (!hidden.IsEmpty) throw new NotSupportedException("hidden states: the CUDA backend returns logits only so far; use the CPU device for hidden states");
        if (logits.IsEmpty) return;
        float[] all;
        lock (_gate) all = model.ForwardLogits(ids.ToArray(), b, t);
        all.AsSpan().CopyTo(logits);
    }

    public (double LossSum, int Counted) Loss(Training.TokenBatch batch, ref object? scratch)
    {
        lock (_gate) return model.Loss(batch);
    }

    public void Dispose() => model.Dispose();
}
