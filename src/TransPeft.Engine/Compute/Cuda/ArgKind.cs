namespace TransPeft.Engine.Compute.Cuda;

/// <summary>The C type of one kernel parameter, as kernels/README.md writes it (pointers are 64-bit device
/// addresses; <c>i64</c>, <c>u64</c>, <c>u32</c> are the prelude's typedefs).</summary>
internal enum ArgKind : byte
{
    Ptr,
    I32,
    I64,
    U32,
    U64,
    F32,
}
