namespace TransPeft.Cuda;

/// <summary>
/// A call into a CUDA library failed. <see cref="Call"/> names the native function, <see cref="ErrorName"/>
/// the symbolic status (CUDA_ERROR_NO_DEVICE, NVRTC_ERROR_COMPILATION, CUBLAS_STATUS_NOT_SUPPORTED ...),
/// <see cref="Code"/> its number.
/// </summary>
public class CudaException : Exception
{
    public CudaException(string call, string errorName, int code, string? detail)
        : base(detail is { Length: > 0 } ? $"{call} failed: {errorName} ({code}): {detail}" : $"{call} failed: {errorName} ({code})")
    {
        Call = call;
        ErrorName = errorName;
        Code = code;
    }

    public string Call { get; }
    public string ErrorName { get; }
    public int Code { get; }
}
