using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// LoRA for a batch whose rows use different adapters (or none), the CPU form of punica's SGMV: for each
/// segment of rows that share adapter slot a, y[seg] += s_a · (x[seg]·A_aᵀ)·B_aᵀ, A_a [r_a, in], B_a [out, r_a].
/// Like <see cref="CpuLinear"/> it multiplies through the rank side first, so a segment costs
/// rows · r_a · (in + out) and streams the adapter's weights once, however many rows share it. The products are
/// <see cref="RowDot"/>'s, whose per-row results do not depend on the segment's length: a row gets the same bits
/// whichever rows share its batch. Inference only:
/// no dropout, no gradients (training has one adapter per model and goes through <see cref="CpuLinear"/>).
/// Run it after the base projection y = x·Wᵀ (+ b); rows of slot -1 keep the base output.
/// </summary>
internal static unsafe class MixedLora
{
    /// <summary>
    /// y[N,out] += LoRA of each row's adapter. <paramref name="slots"/>[a] is adapter a's module for this projection,
    /// or null when adapter a does not adapt it (then its rows keep the base output, as they would alone).
    /// <paramref name="scratchT"/> holds at least N · (largest rank among the slots used) floats.
    /// </summary>
    public static void Forward(float[] y, float[] x, int n, int inDim, int outDim, AdapterSegments segments,
        ReadOnlySpan<LoraModule?> slots, float[] scratchT)
    {
        if (segments.Rows != n) throw new ArgumentException($"segments cover {segments.Rows} rows, the batch has {n}", nameof(segments));
        int maxRank = MaxRank(segments, slots, inDim, outDim);
        if (maxRank == 0) return;
        if (scratchT.Length < (long)n * maxRank) throw new ArgumentException($"scratchT holds {scratchT.Length} floats, {n} rows at rank {maxRank} need {(long)n * maxRank}", nameof(scratchT));
        fixed (float* py = y, px = x, pt = scratchT)
        {
            for (int i = 0; i < segments.Count; i++)
            {
                if (segments.Slots[i] < 0 || slots[segments.Slots[i]] is not { } lora) continue;
                int row0 = segments.Starts[i], rows = segments.Starts[i + 1] - row0, r = lora.Rank;
                float* t = pt + (long)row0 * maxRank;
                fixed (float* pa = lora.A.Data, pb = lora.B.Data)
                {
                    RowDot.MatmulNT(t, px + (long)row0 * inDim, pa, rows, inDim, r, accumulate: false, 1f);
                    RowDot.MatmulNT(py + (long)row0 * outDim, t, pb, rows, r, outDim, accumulate: true, lora.Scaling);
                }
            }
        }
    }

    /// <summary>Largest rank among the slots the segments use; checks each used module's shape against in/out.</summary>
    private static int MaxRank(AdapterSegments segments, ReadOnlySpan<LoraModule?> slots, int inDim, int outDim)
    {
        int maxRank = 0;
        foreach (int slot in segments.Slots)
        {
            if (slot < 0) continue;
            if (slot >= slots.Length) throw new ArgumentOutOfRangeException(nameof(segments), $"adapter slot {slot}; {slots.Length} slots are loaded");
            if (slots[slot] is not { } lora) continue;
            if (lora.In != inDim || lora.Out != outDim)
                throw new ArgumentException($"adapter slot {slot} ({lora.Projection.FullName(lora.Layer)}) is [{lora.Out}x{lora.Rank}]·[{lora.Rank}x{lora.In}], the projection is [{outDim}x{inDim}]", nameof(slots));
            maxRank = Math.Max(maxRank, lora.Rank);
        }
        return maxRank;
    }
}
