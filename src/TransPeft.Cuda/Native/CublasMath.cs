namespace TransPeft.Cuda.Native;

/// <summary>(numbers from library_types.h / cublas_api.h) <c>cublasMath_t</c>.</summary>
public enum CublasMath
{
    Default = 0,
    Pedantic = 2,
    TF32TensorOp = 3,
    DisallowReducedPrecisionReduction = 16,
}
