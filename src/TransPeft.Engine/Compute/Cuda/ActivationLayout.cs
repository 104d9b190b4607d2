using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The activation arena for up to <see cref="Rows"/> tokens (B*T): everything a training step reads and writes
/// besides the parameters, laid out once; any (B, T) with B*T ≤ Rows reuses it (every tensor's size depends on
/// B*T only). bf16 unless noted. Besides the per-layer saved tensors (<see cref="LayerActivationLayout"/>):
/// the residual stream xs[0..L] (xs[l] is layer l's input), the final norm's output and rstd, token ids and
/// shifted targets (int32), per-row losses and their sum (fp32), the LM-head logits of one row chunk
/// (<see cref="HeadChunkRows"/> rows, sized for fp32 so evaluation can use fp32 logits), and scratch for the backward.
/// With <c>recompute</c> every layer shares one set of per-layer regions (LoRA t sized for the largest rank of each
/// projection): the backward refills it by running the layer's forward again from xs[l].
/// </summary>
internal sealed class ActivationLayout
{
    /// <summary>Default budget for one chunk of LM-head logits: V = 152k fp32 logits then come 880 rows at a time.</summary>
    public const long DefaultHeadChunkBytes = 512L << 20;

    public required ArenaLayout Arena { get; init; }
    public required int Rows { get; init; }
    public required int HeadChunkRows { get; init; }
    public required bool HasMaskBuffer { get; init; }

    public required ArenaRegion Ids { get; init; }
    public required ArenaRegion Targets { get; init; }
    public required ArenaRegion Losses { get; init; }
    public required ArenaRegion LossSum { get; init; }
    public required ArenaRegion[] Xs { get; init; }
    public required LayerActivationLayout[] Layers { get; init; }
    public required ArenaRegion FinalNormOut { get; init; }
    public required ArenaRegion FinalRstd { get; init; }
    public required ArenaRegion Logits { get; init; }

    // Scratch, reused by every layer.
    /// <summary>[N, C]: o_proj / down_proj output.</summary>
    public required ArenaRegion Proj { get; init; }
    /// <summary>[N, C]: d loss / d residual stream.</summary>
    public required ArenaRegion DX { get; init; }
    /// <summary>[N, C]: d loss / d norm output (and d loss / d final norm output from the head).</summary>
    public required ArenaRegion DN { get; init; }
    public required ArenaRegion DQ { get; init; }
    public required ArenaRegion DK { get; init; }
    public required ArenaRegion DV { get; init; }
    public required ArenaRegion DAtt { get; init; }
    /// <summary>[N, I]: SwiGLU output in the forward, its gradient in the backward.</summary>
    public required ArenaRegion DA { get; init; }
    /// <summary>[N, I]: the recomputed SwiGLU output in the backward, then d loss / d gate.</summary>
    public required ArenaRegion DG { get; init; }
    public required ArenaRegion DU { get; init; }
    /// <summary>[N, max(C, qdim, I)]: LoRA dropout input, or the gradient through A before the dropout mask.</summary>
    public required ArenaRegion ScratchIn { get; init; }
    /// <summary>[N, max rank]: LoRA dt.</summary>
    public required ArenaRegion ScratchR { get; init; }
    /// <summary>fp32 [B, nh, T]: rowsum(dO·O) of the attention backward.</summary>
    public required ArenaRegion Dsum { get; init; }
    /// <summary>[N, I]: an explicit Trans-PEFT mask of the current layer (only when <see cref="HasMaskBuffer"/>).</summary>
    public required ArenaRegion Mask { get; init; }

    /// <summary>LM-head rows per chunk: as many as fit <paramref name="budgetBytes"/> of fp32 logits, at least 1, at most
    /// <paramref name="rows"/>; a multiple of 64 when that many fit (whole tensor-core tiles).</summary>
    public static int ChunkRows(int rows, int vocab, long budgetBytes)
    {
        if (rows <= 0) throw new ArgumentOutOfRangeException(nameof(rows));
        long fit = Math.Max(1, budgetBytes / (4L * vocab));
        if (fit >= rows) return rows;
        if (fit >= 64) fit = fit / 64 * 64;
        return (int)fit;
    }

    /// <param name="loraRanks">rank of the LoRA module of [layer, projection], 0 where there is none.</param>
    /// <param name="recompute">One shared set of per-layer regions instead of one per layer (activation recomputation).</param>
    public static ActivationLayout Plan(ModelConfig c, int rows, int[,] loraRanks, bool maskBuffer, long headChunkBytes = DefaultHeadChunkBytes, bool recompute = false)
    {
        if (rows <= 0) throw new ArgumentOutOfRangeException(nameof(rows), "at least one token");
        if (loraRanks.GetLength(0) != c.NumLayers || loraRanks.GetLength(1) != ProjectionNames.All.Length)
            throw new ArgumentException($"loraRanks must be [{c.NumLayers}, {ProjectionNames.All.Length}]", nameof(loraRanks));
        long n = rows;
        int h = c.HiddenSize, q = c.QDim, kv = c.KvDim, inter = c.IntermediateSize, v = c.VocabSize;
        long lse = n * c.NumHeads;
        int maxRank = 0;
        foreach (var r in loraRanks) maxRank = Math.Max(maxRank, r);

        var a = new ArenaLayout();
        var ids = a.Add("ids", n, 4);
        var targets = a.Add("targets", n, 4);
        var losses = a.Add("losses", n, 4);
        var lossSum = a.Add("loss_sum", 1, 4);
        var xs = new ArenaRegion[c.NumLayers + 1];
        for (int l = 0; l <= c.NumLayers; l++) xs[l] = a.Add($"xs.{l}", n * h, 2);
        var layers = new LayerActivationLayout[c.NumLayers];
        for (int l = 0; l < c.NumLayers; l++)
        {
            if (recompute && l > 0) { layers[l] = layers[0]; continue; }
            string p = recompute ? "layers.shared." : $"layers.{l}.";
            var n1 = a.Add(p + "n1", n * h, 2);
            var rstd1 = a.Add(p + "rstd1", n, 4);
            var qr = a.Add(p + "q", n * q, 2);
            var kr = a.Add(p + "k", n * kv, 2);
            var vr = a.Add(p + "v", n * kv, 2);
            var att = a.Add(p + "att", n * q, 2);
            var lser = a.Add(p + "lse", lse, 4);
            var hr = a.Add(p + "h", n * h, 2);
            var n2 = a.Add(p + "n2", n * h, 2);
            var rstd2 = a.Add(p + "rstd2", n, 4);
            var g = a.Add(p + "g", n * inter, 2);
            var u = a.Add(p + "u", n * inter, 2);
            var loraT = new ArenaRegion[ProjectionNames.All.Length];
            foreach (var proj in ProjectionNames.All)
            {
                int rank = loraRanks[l, (int)proj];
                if (recompute) for (int k = 1; k < c.NumLayers; k++) rank = Math.Max(rank, loraRanks[k, (int)proj]);
                if (rank > 0) loraT[(int)proj] = a.Add($"{p}lora_t.{proj.ShortName()}", n * rank, 2);
            }
            layers[l] = new LayerActivationLayout
            {
                N1 = n1, Rstd1 = rstd1, Q = qr, K = kr, V = vr, Att = att, Lse = lser, H = hr, N2 = n2, Rstd2 = rstd2, G = g, U = u, LoraT = loraT,
            };
        }
        var finalOut = a.Add("final_norm_out", n * h, 2);
        var finalRstd = a.Add("final_rstd", n, 4);
        int chunk = ChunkRows(rows, v, headChunkBytes);
        var logits = a.Add("logits_chunk", (long)chunk * v, 4);
        var proj2 = a.Add("proj", n * h, 2);
        var dx = a.Add("dx", n * h, 2);
        var dn = a.Add("dn", n * h, 2);
        var dq = a.Add("dq", n * q, 2);
        var dk = a.Add("dk", n * kv, 2);
        var dv = a.Add("dv", n * kv, 2);
        var datt = a.Add("datt", n * q, 2);
        var da = a.Add("da", n * inter, 2);
        var dg = a.Add("dg", n * inter, 2);
        var du = a.Add("du", n * inter, 2);
        var scratchIn = a.Add("scratch_in", n * Math.Max(Math.Max(h, q), inter), 2);
        var scratchR = a.Add("scratch_r", n * Math.Max(1, maxRank), 2);
        var dsum = a.Add("dsum", lse, 4);
        var mask = a.Add("ffn_mask", maskBuffer ? n * inter : 0, 2);
        return new ActivationLayout
        {
            Arena = a, Rows = rows, HeadChunkRows = chunk, HasMaskBuffer = maskBuffer,
            Ids = ids, Targets = targets, Losses = losses, LossSum = lossSum, Xs = xs, Layers = layers,
            FinalNormOut = finalOut, FinalRstd = finalRstd, Logits = logits,
            Proj = proj2, DX = dx, DN = dn, DQ = dq, DK = dk, DV = dv, DAtt = datt, DA = da, DG = dg, DU = du,
            ScratchIn = scratchIn, ScratchR = scratchR, Dsum = dsum, Mask = mask,
        };
    }
}
