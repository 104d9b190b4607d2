using TransPeft.Cuda;
using TransPeft.Engine.Compute.Cuda;

namespace TransPeft.Engine.Tests.Cuda.Emulation;

/// <summary>
/// The launch rules of kernels/README.md, checked on every emulated launch: whole warps, at most 1024 threads,
/// the exact block and grid shapes the tile-based kernels index by (lora_dropout_shrink, the attention kernels),
/// enough warps for the one-warp-per-row kernels, single-block reductions, and 16-byte alignment for the
/// tensor-core attention. A launch that would compute on a GPU but break a rule (say, a grid one tile short)
/// fails here rather than giving wrong numbers there.
/// </summary>
internal static class EmulatedLaunchRules
{
    public static void Check(KernelId k, LaunchShape s, ReadOnlySpan<KernelArgument> a)
    {
        var name = KernelCatalog.Get(k).Name;
        void Require(bool ok, string rule)
        {
            if (!ok) throw new InvalidOperationException($"{name} launched with {s}: {rule}");
        }
        Require(s.Grid.X >= 1 && s.Grid.Y >= 1 && s.Grid.Z >= 1, "every grid dimension must be at least 1");
        Require(s.Grid.Y <= 65535 && s.Grid.Z <= 65535, "grid y and z are at most 65535");
        Require(s.Block.X % 32 == 0, "blockDim.x must be a multiple of 32 (whole warps)");
        Require((long)s.Block.X * s.Block.Y * s.Block.Z <= 1024, "at most 1024 threads per block");

        static uint Ceil(long n, int d) => (uint)((n + d - 1) / d);
        int warps = (int)(s.Block.X / 32);
        switch (k)
        {
            case KernelId.LoraDropoutShrink:
                Require(s.Block == new Dim3(128), "blockDim must be exactly 128");
                Require(s.Grid == new Dim3(Ceil(a[3].AsI32, 64), Ceil(a[5].AsI32, 64)), "gridDim must be (ceil(N/64), ceil(r/64))");
                Require(a[5].AsI32 >= 1, "rank >= 1");
                break;
            case KernelId.SgmvShrink:
                Require(s.Block == new Dim3(128), "blockDim must be exactly 128");
                Require(s.Grid.Y == (uint)a[5].AsI32 && s.Grid.Z == 1, "gridDim must be (any, nseg)");
                break;
            case KernelId.SgmvExpand:
                Require(s.Block == new Dim3(128), "blockDim must be exactly 128");
                Require(s.Grid.X == Ceil(a[7].AsI32, 64) && s.Grid.Z == (uint)a[6].AsI32, "gridDim must be (ceil(out/64), any, nseg)");
                break;
            case KernelId.DecodeAttention:
                Require(s.Block == new Dim3(128), "blockDim must be exactly 128");
                Require(s.Grid == new Dim3(Ceil(a[6].AsI32, 4), (uint)a[8].AsI32), "gridDim must be (ceil(N/4), nh)");
                Require(a[8].AsI32 % a[9].AsI32 == 0, "nh % nkv == 0");
                Require(a[10].AsI32 % 2 == 0 && a[10].AsI32 <= 256, "even d <= 256");
                break;
            case KernelId.FlashAttentionForward or KernelId.FlashAttentionForwardD64 or KernelId.FlashAttentionForwardD128:
                AttentionShape(k, s, Require, b: a[5].AsI32, rows: a[6].AsI32, heads: a[9].AsI32, d: a[11].AsI32);
                Require(a[7].AsI32 >= a[6].AsI32 && a[8].AsI32 >= a[7].AsI32, "Tcap >= Tkv >= Tq");
                Require(a[9].AsI32 % a[10].AsI32 == 0, "nh % nkv == 0");
                Aligned(a, Require, 0, 2, 3, 4);
                break;
            case KernelId.FlashAttentionBackwardDq or KernelId.FlashAttentionBackwardDqD64 or KernelId.FlashAttentionBackwardDqD128:
                AttentionShape(k, s, Require, b: a[7].AsI32, rows: a[8].AsI32, heads: a[9].AsI32, d: a[11].AsI32);
                Aligned(a, Require, 0, 1, 2, 3, 4);
                break;
            case KernelId.FlashAttentionBackwardDkDv or KernelId.FlashAttentionBackwardDkDvD64 or KernelId.FlashAttentionBackwardDkDvD128:
                AttentionShape(k, s, Require, b: a[8].AsI32, rows: a[9].AsI32, heads: a[11].AsI32, d: a[12].AsI32);
                Aligned(a, Require, 0, 1, 2, 3, 4, 5);
                break;
            case KernelId.FlashAttentionBackwardPreprocess:
                Require((long)s.Grid.X * warps >= (long)a[3].AsI32 * a[4].AsI32 * a[5].AsI32, "one warp per (b, t, h) row");
                break;
            case KernelId.RmsNormForward:
                Require((long)s.Grid.X * warps >= a[4].AsI32, "one warp per row");
                break;
            case KernelId.RmsNormResidualForward:
                Require((long)s.Grid.X * warps >= a[6].AsI32, "one warp per row");
                break;
            case KernelId.RmsNormBackward:
                Require((long)s.Grid.X * warps >= a[5].AsI32, "one warp per row");
                break;
            case KernelId.ColumnSumBf16:
                ColumnShape(s, Require, a[3].AsI32);
                break;
            case KernelId.RmsNormBackwardWeight:
                ColumnShape(s, Require, a[5].AsI32);
                break;
            case KernelId.ReduceSumF32 or KernelId.GlobalNormFinalize:
                Require(s.Grid == new Dim3(1) && s.Block.Y == 1, "exactly one block");
                break;
            default:
                Require(s.Block.Y == 1 && s.Block.Z == 1, "a 1-D block");
                break;
        }
    }

    private static void AttentionShape(KernelId k, LaunchShape s, Action<bool, string> require, int b, int rows, int heads, int d)
    {
        require(s.Block == new Dim3(128), "attention kernels run 128 threads per block");
        bool mma = k is KernelId.FlashAttentionForwardD64 or KernelId.FlashAttentionForwardD128 or KernelId.FlashAttentionBackwardDqD64
            or KernelId.FlashAttentionBackwardDqD128 or KernelId.FlashAttentionBackwardDkDvD64 or KernelId.FlashAttentionBackwardDkDvD128;
        int tile = mma ? 64 : 4;
        require(s.Grid == new Dim3((uint)((rows + tile - 1) / tile), (uint)heads, (uint)b), $"gridDim must be (ceil(T/{tile}), heads, B)");
        int want = k switch
        {
            KernelId.FlashAttentionForwardD64 or KernelId.FlashAttentionBackwardDqD64 or KernelId.FlashAttentionBackwardDkDvD64 => 64,
            KernelId.FlashAttentionForwardD128 or KernelId.FlashAttentionBackwardDqD128 or KernelId.FlashAttentionBackwardDkDvD128 => 128,
            _ => 0,
        };
        if (want > 0) require(d == want, $"this kernel is for head_dim {want}");
        else require(d > 0 && d % 2 == 0 && d <= 256, "the generic kernels take an even head_dim up to 256");
    }

    private static void ColumnShape(LaunchShape s, Action<bool, string> require, int cols)
    {
        require(s.Block.X == 32 && s.Block.Y is >= 1 and <= 32 && s.Block.Z == 1, "blockDim must be (32, Y) with 1 <= Y <= 32");
        require(s.Grid.X >= (uint)((cols + 31) / 32), "one block per 32 columns");
    }

    private static void Aligned(ReadOnlySpan<KernelArgument> a, Action<bool, string> require, params int[] indices)
    {
        foreach (var i in indices) require(a[i].AsPtr.Address % 16 == 0, $"tensor argument {i} must be 16-byte aligned");
    }
}
