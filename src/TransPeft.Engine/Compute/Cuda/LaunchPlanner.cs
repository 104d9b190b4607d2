using TransPeft.Cuda;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The launch configuration of every kernel for given shapes: pure functions of the shapes and the GPU's SM
/// count, written down once from kernels/README.md (tested without a GPU). Grid-stride kernels get
/// <c>blockDim 256, gridDim min(ceil(work / 256), 8 x SMs)</c>; the others the exact shape their contract
/// demands.
/// </summary>
internal sealed class LaunchPlanner(int multiprocessorCount)
{
    public const int FlatBlock = 256;
    /// <summary>Rows per block of the one-warp-per-row kernels (rmsnorm, attention preprocess): 256 / 32.</summary>
    public const int RowKernelBlock = 256;
    public const int AttentionBlock = 128;
    /// <summary>Query rows (or keys) per block of the tensor-core attention kernels.</summary>
    public const int MmaTile = 64;
    /// <summary>Rows per block of the generic attention kernels: one warp per query row (or key), 4 warps.</summary>
    public const int GenericAttentionRows = 4;
    public const int ShrinkBlock = 128;
    public const int ShrinkRows = 64;
    public const int ShrinkRanks = 64;
    /// <summary>blockDim.y of the column reductions (bias gradient, rmsnorm weight gradient).</summary>
    public const int ColumnRows = 16;

    public int MultiprocessorCount { get; } = multiprocessorCount > 0 ? multiprocessorCount
        : throw new ArgumentOutOfRangeException(nameof(multiprocessorCount), "a GPU has at least one SM");

    /// <summary>The grid of a grid-stride kernel over <paramref name="work"/> items (at least one block).</summary>
    public LaunchShape GridStride(long work)
    {
        long blocks = Math.Clamp((work + FlatBlock - 1) / FlatBlock, 1, 8L * MultiprocessorCount);
        return new LaunchShape((uint)blocks, FlatBlock);
    }

    /// <summary>One warp per row: rmsnorm forward/backward, attention preprocess.</summary>
    public static LaunchShape WarpPerRow(long rows) =>
        new(checked((uint)Math.Max(1, (rows + RowKernelBlock / 32 - 1) / (RowKernelBlock / 32))), RowKernelBlock);

    /// <summary>Block-per-row kernels over <paramref name="rows"/> (grid-stride over rows, grid capped at 2^31-1).</summary>
    public static LaunchShape BlockPerRow(long rows, int block) =>
        new((uint)Math.Clamp(rows, 1, int.MaxValue), (uint)block);

    /// <summary>Column reductions: blockDim (32, 16), one block per 32 columns.</summary>
    public static LaunchShape ColumnReduction(int cols) =>
        new(Dim3.BlocksFor(Math.Max(cols, 1), 32), new Dim3(32, ColumnRows));

    /// <summary>Cross-entropy and argmax: a block per row, a multiple of 32 threads up to 1024 (1024 for a large vocabulary).</summary>
    public static LaunchShape PerRowSoftmax(int rows, int vocab) =>
        BlockPerRow(rows, Math.Clamp((vocab + 31) / 32 * 32, 32, 1024));

    public static LaunchShape EmbeddingForward(int n) => BlockPerRow(n, 128);

    public static LaunchShape EmbeddingBackward(int vocab) => BlockPerRow(vocab, 256);

    /// <summary>One block sums everything (reduce_sum_f32, global_norm_finalize).</summary>
    public static LaunchShape SingleBlock => new(1, 1024);

    /// <summary>lora_dropout_shrink: exactly 128 threads, 64 rows x 64 ranks per block.</summary>
    public static LaunchShape LoraShrink(int n, int rank) =>
        new(new Dim3(Dim3.BlocksFor(Math.Max(n, 1), ShrinkRows), Dim3.BlocksFor(rank, ShrinkRanks)), ShrinkBlock);

    /// <summary>sgmv_shrink / sgmv_expand: exactly 128 threads, a block per 16 rows of a segment (and per 64 output columns).</summary>
    public const int SgmvBlock = 128;
    public const int SgmvRows = 16;
    public const int SgmvColumns = 64;

    /// <summary>sgmv_shrink: (16-row tiles of the longest segment, segments).</summary>
    public static LaunchShape SgmvShrink(int segments, int longestSegment) =>
        new(new Dim3(Dim3.BlocksFor(Math.Max(longestSegment, 1), SgmvRows), (uint)Math.Max(segments, 1)), SgmvBlock);

    /// <summary>sgmv_expand: (64-column tiles of out, 16-row tiles of the longest segment, segments).</summary>
    public static LaunchShape SgmvExpand(int segments, int longestSegment, int outDim) =>
        new(new Dim3(Dim3.BlocksFor(Math.Max(outDim, 1), SgmvColumns), Dim3.BlocksFor(Math.Max(longestSegment, 1), SgmvRows), (uint)Math.Max(segments, 1)), SgmvBlock);

    /// <summary>Which attention kernels serve head_dim <paramref name="d"/>: tensor cores for 64 and 128, the
    /// generic ones for any other even d up to 256.</summary>
    public static AttentionVariant AttentionFor(int d)
    {
        if (d == 64) return AttentionVariant.D64;
        if (d == 128) return AttentionVariant.D128;
        if (d > 0 && d % 2 == 0 && d <= 256) return AttentionVariant.Generic;
        throw new NotSupportedException($"head_dim {d}: the CUDA attention kernels handle 64, 128 (tensor cores) or any even head_dim up to 256");
    }

    /// <summary>Forward: a block per 64 query rows (tensor cores) or per 4 rows (generic), per head and batch row.</summary>
    public static LaunchShape AttentionForward(AttentionVariant v, int b, int tq, int nh) =>
        new(new Dim3(Dim3.BlocksFor(tq, v == AttentionVariant.Generic ? GenericAttentionRows : MmaTile), (uint)nh, (uint)b), AttentionBlock);

    public static LaunchShape AttentionBackwardDq(AttentionVariant v, int b, int t, int nh) => AttentionForward(v, b, t, nh);

    /// <summary>dK/dV: a block per 64 keys (tensor cores) or 4 keys (generic), per kv head and batch row.</summary>
    public static LaunchShape AttentionBackwardDkDv(AttentionVariant v, int b, int t, int nkv) =>
        new(new Dim3(Dim3.BlocksFor(t, v == AttentionVariant.Generic ? GenericAttentionRows : MmaTile), (uint)nkv, (uint)b), AttentionBlock);

    /// <summary>decode_attention: a block per 4 rows (one warp each), per query head.</summary>
    public static LaunchShape DecodeAttention(int n, int nh) =>
        new(new Dim3(Dim3.BlocksFor(Math.Max(n, 1), GenericAttentionRows), (uint)nh), AttentionBlock);

    public static LaunchShape AttentionPreprocess(int b, int t, int nh) =>
        new(Dim3.BlocksFor((long)b * t * nh, AttentionBlock / 32), AttentionBlock);

    /// <summary>global_norm_squared: a FIXED grid (2 x SMs) so that every gradient tensor adds into the same
    /// partial sums in the same order.</summary>
    public LaunchShape GlobalNormSquared => new((uint)NormPartials, FlatBlock);

    /// <summary>Number of partial sums global_norm_squared writes (its grid size).</summary>
    public int NormPartials => 2 * MultiprocessorCount;
}
