using System.Runtime.InteropServices;

namespace TransPeft.Cuda.Native;

/// <summary>
/// cuBLAS bindings, the <c>_v2</c> API (the unsuffixed names are the legacy API with an implicit global handle).
/// Scalars (alpha, beta) are host pointers: the handle stays in the default pointer mode (host).
/// </summary>
internal static unsafe partial class Cublas
{
    static Cublas() => CudaLibraryResolver.EnsureRegistered();

    [LibraryImport(LibraryNames.Cublas)] public static partial int cublasCreate_v2(nint* handle);
    [LibraryImport(LibraryNames.Cublas)] public static partial int cublasDestroy_v2(nint handle);
    [LibraryImport(LibraryNames.Cublas)] public static partial int cublasGetVersion_v2(nint handle, int* version);
    [LibraryImport(LibraryNames.Cublas)] public static partial int cublasSetStream_v2(nint handle, nint stream);
    [LibraryImport(LibraryNames.Cublas)] public static partial int cublasSetWorkspace_v2(nint handle, ulong workspace, nuint workspaceBytes);
    [LibraryImport(LibraryNames.Cublas)] public static partial int cublasSetMathMode(nint handle, CublasMath mode);

    [LibraryImport(LibraryNames.Cublas)]
    public static partial int cublasGemmEx(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        void* alpha, ulong a, CudaDataType aType, int lda, ulong b, CudaDataType bType, int ldb,
        void* beta, ulong c, CudaDataType cType, int ldc, CublasComputeType computeType, CublasGemmAlgo algo);

    [LibraryImport(LibraryNames.Cublas)]
    public static partial int cublasGemmStridedBatchedEx(nint handle, CublasOperation transA, CublasOperation transB, int m, int n, int k,
        void* alpha, ulong a, CudaDataType aType, int lda, long strideA, ulong b, CudaDataType bType, int ldb, long strideB,
        void* beta, ulong c, CudaDataType cType, int ldc, long strideC, int batchCount, CublasComputeType computeType, CublasGemmAlgo algo);
}
