using TransPeft.Engine.Lora;

namespace TransPeft.Engine.Model;

/// <summary>
/// The model-level rules every backend applies before it computes anything: batch shape, token range,
/// positions (max_position_embeddings and Mistral's sliding window), adapter layers, and which parameters a
/// training run updates. One source, so the CPU and the CUDA backend refuse the same inputs with the same
/// message (a test runs both on the same bad inputs).
/// </summary>
internal static class ModelRules
{
    /// <summary>ids [B, T] starting at position <paramref name="pos0"/> (0 unless a KV cache holds a prefix).</summary>
    public static void CheckBatch(ModelConfig config, int maxPositions, int idsLength, int b, int t, int pos0 = 0)
    {
        if (b <= 0 || t <= 0) throw new ArgumentException($"batch {b} x {t}: both must be positive");
        if (idsLength != b * t) throw new ArgumentException($"expected {b}x{t} = {b * t} token ids, got {idsLength}");
        CheckPositions(config, maxPositions, pos0 + t);
    }

    /// <summary><paramref name="positions"/> positions of one sequence (prefix included) fit the model.</summary>
    public static void CheckPositions(ModelConfig config, int maxPositions, int positions)
    {
        if (PositionsProblem(config, maxPositions, positions) is { } problem) throw new ArgumentException(problem);
    }

    private static string? PositionsProblem(ModelConfig config, int maxPositions, int positions)
    {
        if (positions > maxPositions) return $"sequence length {positions} exceeds max_position_embeddings {maxPositions}";
        // Sliding-window attention is not implemented: within the window it equals full causal attention,
        // so sequences up to the window are exact and longer ones are refused rather than computed differently.
        if (config.SlidingWindow is int w && positions > w)
            return $"{positions} positions exceed the model's sliding_window {w}; sliding-window attention is not implemented (sequences up to the window are exact)";
        return null;
    }

    /// <summary>
    /// One mixed decode step (a token for each of N sequences, row i on caches[i], CPU and CUDA alike): every cache holds
    /// one sequence (batch 1), has room for one more position, and that position fits the model; every id is in the
    /// vocabulary; no cache appears twice. Each message names its row.
    /// </summary>
    public static void CheckDecodeRows(ModelConfig config, int maxPositions, ReadOnlySpan<int> ids, ReadOnlySpan<Inference.KvCache> caches)
    {
        int v = config.VocabSize;
        for (int i = 0; i < ids.Length; i++)
        {
            var cache = caches[i];
            if (cache.BatchSize != 1) throw new ArgumentException($"row {i}: a mixed decode takes one KV cache per sequence (batch 1), got batch {cache.BatchSize}");
            if (cache.Length + 1 > cache.Capacity) throw new ArgumentException($"row {i}: cache holds {cache.Capacity} positions, all used");
            if (PositionsProblem(config, maxPositions, cache.Length + 1) is { } problem) throw new ArgumentException($"row {i}: {problem}");
            if ((uint)ids[i] >= (uint)v) throw new ArgumentOutOfRangeException(nameof(ids), $"row {i}: token id {ids[i]} is outside the vocabulary [0, {v})");
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(caches[j], cache)) throw new ArgumentException($"rows {j} and {i}: the same KV cache twice; each sequence needs its own");
        }
    }

    /// <summary>Every id in [0, vocab_size).</summary>
    public static void CheckTokens(ModelConfig config, ReadOnlySpan<int> ids)
    {
        int v = config.VocabSize;
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)v)
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {ids[i]} at position {i} is outside the vocabulary [0, {v})");
    }

    public static void CheckAdapter(ModelConfig config, LoraAdapter? adapter)
    {
        if (adapter is not null && adapter.NumLayers != config.NumLayers)
            throw new ArgumentException($"adapter has {adapter.NumLayers} layers, the model {config.NumLayers}");
    }

    /// <summary>
    /// What a training backend updates: every base weight (full fine-tuning) or the adapter's A/B (LoRA, base
    /// frozen). Gradient buffers are switched on for exactly those. Frozen base weights are never switched off
    /// here: the same <see cref="TransformerModel"/> may back other model objects (an inference session, a second
    /// trainer), and a backend in LoRA mode ignores base gradient buffers instead of removing them.
    /// </summary>
    public static IReadOnlyList<Parameter> TrainableParameters(TransformerModel model, LoraAdapter? adapter, bool fullFineTune)
    {
        var list = fullFineTune ? model.Parameters().ToList() : adapter?.Parameters().ToList() ?? [];
        foreach (var p in list) p.EnableGrad();
        return list;
    }
}
