using TransPeft.Engine.Inference;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute;

/// <summary>
/// The backend contract for inference, beside <see cref="Training.ITrainableModel"/> for training: prefill and
/// decode with a caller-owned KV cache, and a full forward giving logits and hidden states. One object per
/// (base weights, adapter) pair; it holds no per-request state, so many threads may call it at once as long as
/// each brings its own cache and scratch. Shapes, token range, positions and adapter layers are checked by
/// <see cref="ModelRules"/> in every implementation.
/// </summary>
internal interface IInferenceModel
{
    ModelConfig Config { get; }

    /// <summary>Positions a sequence may reach (max_position_embeddings unless the backend was built for fewer).</summary>
    int MaxPositions { get; }

    /// <summary>An empty cache for <paramref name="batchSize"/> sequences of up to <paramref name="capacity"/> positions.</summary>
    KvCache CreateCache(int batchSize, int capacity);

    /// <summary>Runs ids [B, T] after the cache's positions, appends their keys/values, writes the last position's logits [B, V].</summary>
    void Prefill(KvCache cache, ReadOnlySpan<int> ids, int b, int t, Span<float> lastLogits);

    /// <summary>One new token per row, ids [B]; logits [B, V]. The per-token path of generation.</summary>
    void Decode(KvCache cache, ReadOnlySpan<int> ids, Span<float> logits);

    /// <summary>Full forward of ids [B, T] from position 0: logits [B*T, V] and/or final-norm hidden states [B*T, C]
    /// (an empty span skips that output). <paramref name="scratch"/> is the caller's working memory.</summary>
    void Forward(ReadOnlySpan<int> ids, int b, int t, Span<float> logits, Span<float> hidden, ref object? scratch);

    /// <summary>Sum of cross-entropy over the batch's counted targets (labels shifted by one, -100 ignored) and their number.</summary>
    (double LossSum, int Counted) Loss(Training.TokenBatch batch, ref object? scratch);
}
