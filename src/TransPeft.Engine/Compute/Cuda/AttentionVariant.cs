namespace TransPeft.Engine.Compute.Cuda;

/// <summary>Which flash-attention kernels a head_dim uses: tensor-core kernels for 64 and 128, generic ones otherwise.</summary>
internal enum AttentionVariant
{
    Generic,
    D64,
    D128,
}
