using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// One request's CPU working memory for inference: the activations of the last (B, T) shape it ran, a copy of
/// its ids and the last-position rows. Held by the caller (a KV cache or a context), never by the shared model, so
/// concurrent requests on one model touch disjoint memory. Sized on first use and reused: a decode step
/// (same B, T = 1) allocates nothing.
/// </summary>
internal sealed class CpuDecodeScratch
{
    private CpuActivations? _prefill, _decode;
    private int[] _ids = [];
    private float[] _last = [];
    /// <summary>Logits of one LM-head chunk (scoring with labels).</summary>
    public float[]? LogitsChunk;

    public int[] IdsBuffer => _ids;

    public CpuActivations Activations(ModelConfig c, int b, int t, int maxRank)
    {
        // Decode (T = 1) and prefill shapes alternate in generation: keep one of each.
        ref var slot = ref (t == 1 ? ref _decode : ref _prefill);
        // One layer buffer set shared by every layer (the recompute layout): inference never goes back to a layer's activations.
        if (slot is null || slot.B != b || slot.T != t || slot.MaxRank < maxRank) slot = new CpuActivations(c, b, t, maxRank, recompute: true);
        return slot;
    }

    /// <summary>An ids buffer of exactly <paramref name="n"/> entries (Embedding.Forward reads its whole length).</summary>
    public Span<int> Ids(int n)
    {
        if (_ids.Length != n) _ids = new int[n];
        return _ids;
    }

    public float[] Last(int n)
    {
        if (_last.Length < n) _last = new float[n];
        return _last;
    }
}
