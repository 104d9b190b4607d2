namespace TransPeft.Cuda.Native;

/// <summary>(numbers from library_types.h / cublas_api.h) <c>cublasOperation_t</c>.</summary>
public enum CublasOperation
{
    N = 0,
    T = 1,
}
