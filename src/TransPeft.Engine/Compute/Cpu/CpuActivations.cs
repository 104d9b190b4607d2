using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// Everything the CPU forward saves for the backward, laid out once for a (B, T) shape and reused by
/// every step of that shape. Per layer: the residual input, both norms' outputs and rstd, q/k (after RoPE),
/// v, the attention output and its logsumexp, h = x + attn, the SwiGLU pre-activations g, u and the
/// activation a, and t = drop(x)·Aᵀ of each LoRA module. Plus scratch for the backward.
/// With <c>recompute</c> only the residual stream xs[l] is kept per layer: every entry of <see cref="Layers"/> is
/// one shared buffer set, which the backward refills by running the layer's forward again from xs[l]
/// (activation recomputation: one layer's activations instead of L, for one more forward's work).
/// </summary>
internal sealed class CpuActivations
{
    public int B { get; }
    public int T { get; }
    public int N => B * T;
    /// <summary>Largest LoRA rank the per-module t buffers hold.</summary>
    public int MaxRank { get; }

    /// <summary>Residual stream xs[l] = input of layer l, xs[L] = input of the final norm. [N, C] each.</summary>
    public float[][] Xs { get; }
    public LayerActivations[] Layers { get; }
    public float[] FinalNormOut { get; }
    public float[] FinalRstd { get; }

    // Scratch (forward and backward).
    public float[] Proj { get; }       // [N, C] o_proj / down_proj output
    public float[] Mask { get; }       // [N, I] Trans-PEFT keep mask of the current layer
    public float[] ScratchIn { get; }  // [N, max(C, qdim, I)] LoRA dropout input / gradient
    public float[] ScratchR { get; }   // [N, maxRank] LoRA dt
    public float[] DX { get; }         // [N, C]
    public float[] DN { get; }         // [N, C]
    public float[] DQ { get; }         // [N, qdim]
    public float[] DK { get; }         // [N, kvdim]
    public float[] DV { get; }         // [N, kvdim]
    public float[] DAtt { get; }       // [N, qdim]
    public float[] DA { get; }         // [N, I]
    public float[] DG { get; }         // [N, I]
    public float[] DU { get; }         // [N, I]

    /// <summary>True when every layer shares one activation buffer set (see the class summary).</summary>
    public bool Recompute { get; }

    public CpuActivations(ModelConfig c, int b, int t, int maxRank, bool recompute = false)
    {
        B = b; T = t; MaxRank = maxRank; Recompute = recompute;
        int n = b * t, h = c.HiddenSize, q = c.QDim, kv = c.KvDim, i = c.IntermediateSize;
        Xs = new float[c.NumLayers + 1][];
        for (int l = 0; l <= c.NumLayers; l++) Xs[l] = new float[n * h];
        Layers = new LayerActivations[c.NumLayers];
        var shared = recompute ? new LayerActivations(c, b, t, maxRank) : null;
        for (int l = 0; l < c.NumLayers; l++) Layers[l] = shared ?? new LayerActivations(c, b, t, maxRank);
        FinalNormOut = new float[n * h];
        FinalRstd = new float[n];
        Proj = new float[n * h];
        Mask = new float[n * i];
        ScratchIn = new float[n * Math.Max(Math.Max(h, q), i)];
        ScratchR = new float[n * Math.Max(1, maxRank)];
        DX = new float[n * h]; DN = new float[n * h];
        DQ = new float[n * q]; DK = new float[n * kv]; DV = new float[n * kv]; DAtt = new float[n * q];
        DA = new float[n * i]; DG = new float[n * i]; DU = new float[n * i];
    }

    /// <summary>Bytes of what the forward keeps for the backward: the residual stream, the final norm and the
    /// distinct per-layer buffer sets (scratch and gradients excluded).</summary>
    public long StoredBytes
    {
        get
        {
            long floats = Xs.Sum(x => (long)x.Length) + FinalNormOut.Length + FinalRstd.Length;
            foreach (var la in Layers.Distinct()) floats += la.Floats;
            return floats * sizeof(float);
        }
    }
}

internal sealed class LayerActivations
{
    public float[] N1, Rstd1, Q, K, V, Att, Lse, H, N2, Rstd2, G, U, A;
    /// <summary>t = drop(x)·Aᵀ [N, r] per projection (null where the projection has no LoRA module).</summary>
    public float[]?[] LoraT = new float[]?[7];
    public bool Dropped;

    public LayerActivations(ModelConfig c, int b, int t, int maxRank)
    {
        int n = b * t, h = c.HiddenSize, q = c.QDim, kv = c.KvDim, i = c.IntermediateSize;
        N1 = new float[n * h]; Rstd1 = new float[n];
        Q = new float[n * q]; K = new float[n * kv]; V = new float[n * kv];
        Att = new float[n * q]; Lse = new float[b * c.NumHeads * t];
        H = new float[n * h]; N2 = new float[n * h]; Rstd2 = new float[n];
        G = new float[n * i]; U = new float[n * i]; A = new float[n * i];
        if (maxRank > 0) for (int p = 0; p < 7; p++) LoraT[p] = new float[n * maxRank];
    }

    public long Floats =>
        new[] { N1, Rstd1, Q, K, V, Att, Lse, H, N2, Rstd2, G, U, A }.Sum(x => (long)x.Length) + LoraT.Sum(x => (long)(x?.Length ?? 0));
}
