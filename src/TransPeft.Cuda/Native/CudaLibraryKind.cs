namespace TransPeft.Cuda.Native;

/// <summary>The native libraries the CUDA layer loads.</summary>
public enum CudaLibraryKind
{
    /// <summary>The driver's user-space library, <c>libcuda.so.1</c>.</summary>
    Driver,
    /// <summary>The runtime compiler, <c>libnvrtc.so.13/.12/.11.2</c> (+ its builtins library).</summary>
    Nvrtc,
    /// <summary><c>libcublas.so.13/.12/.11</c> (+ <c>libcublasLt</c> from the same folder).</summary>
    Cublas,
    /// <summary>NVTX ranges for Nsight: <c>libnvtx3interop.so.1</c> or <c>libnvToolsExt.so.1</c>. Optional.</summary>
    Nvtx,
}
