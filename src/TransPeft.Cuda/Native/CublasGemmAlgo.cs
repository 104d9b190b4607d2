namespace TransPeft.Cuda.Native;

/// <summary>(numbers from library_types.h / cublas_api.h) <c>cublasGemmAlgo_t</c>: only the heuristic choice is used.</summary>
public enum CublasGemmAlgo
{
    Default = -1,
}
