namespace TransPeft.Cuda.Native;

/// <summary>
/// <c>CUresult</c>. Only the codes the code reasons about are named here; every code gets its symbolic
/// name (CUDA_ERROR_...) from <see cref="CudaErrorNames"/> when it becomes an exception.
/// </summary>
internal enum CuResult
{
    Success = 0,
    ErrorInvalidValue = 1,
    ErrorNotInitialized = 3,
    ErrorStubLibrary = 34,
    ErrorNoDevice = 100,
    ErrorNotFound = 500,
    ErrorNotReady = 600,
}
