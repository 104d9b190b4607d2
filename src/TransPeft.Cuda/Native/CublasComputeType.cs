namespace TransPeft.Cuda.Native;

/// <summary>(numbers from library_types.h / cublas_api.h) <c>cublasComputeType_t</c>.</summary>
public enum CublasComputeType
{
    Compute16F = 64,
    Compute32F = 68,
    Compute32FPedantic = 69,
    Compute64F = 70,
    Compute32FFastTF32 = 77,
}
