namespace TransPeft.Cuda.Native;

/// <summary>(numbers from library_types.h / cublas_api.h) <c>cudaDataType</c>.</summary>
public enum CudaDataType
{
    R32F = 0,
    R64F = 1,
    R16F = 2,
    R8I = 3,
    R32I = 10,
    R16BF = 14,
}
