using TransPeft.Cuda;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>Grid, block and dynamic shared memory of one kernel launch.</summary>
internal readonly record struct LaunchShape(Dim3 Grid, Dim3 Block, uint SharedBytes = 0)
{
    public long Threads => (long)Grid.X * Grid.Y * Grid.Z * Block.X * Block.Y * Block.Z;
    public override string ToString() => $"grid {Grid} block {Block}" + (SharedBytes > 0 ? $" smem {SharedBytes}" : "");
}
