using System.Runtime.InteropServices;

namespace TransPeft.Cuda.Native;

/// <summary>
/// CUDA Driver API bindings: blittable signatures only (handles as <c>nint</c>, <c>CUdeviceptr</c> as
/// <c>ulong</c>, <c>CUdevice</c> as <c>int</c>, <c>size_t</c> as <c>nuint</c>, strings as UTF-8 <c>byte*</c>).
/// <para>
/// The versioned exports are bound on purpose: <c>cuMemAlloc</c>, <c>cuMemcpyHtoD</c>, <c>cuStreamDestroy</c> ...
/// without <c>_v2</c> still exist in libcuda with their OLD signatures (32-bit sizes and pointers) for binaries
/// built against CUDA 3.x, and silently truncate. cuda.h maps the plain names onto these with macros; a binding
/// that skips the header must name them itself.
/// </para>
/// Entry points that exist only in newer drivers (<c>cuEventElapsedTime_v2</c>) are looked up at run time, see
/// <see cref="CuDriverOptional"/>.
/// </summary>
internal static unsafe partial class CuDriver
{
    static CuDriver() => CudaLibraryResolver.EnsureRegistered();

    // --- initialisation, version, devices ---------------------------------------------------------------
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuInit(uint flags);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDriverGetVersion(int* version);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDeviceGet(int* device, int ordinal);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDeviceGetCount(int* count);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDeviceGetName(byte* name, int length, int device);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDeviceGetAttribute(int* value, CuDeviceAttribute attribute, int device);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDeviceTotalMem_v2(nuint* bytes, int device);

    // --- contexts: the device's primary context, made current per thread -------------------------------
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDevicePrimaryCtxRetain(nint* context, int device);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDevicePrimaryCtxRelease_v2(int device);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuCtxSetCurrent(nint context);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuCtxGetCurrent(nint* context);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuCtxSynchronize();
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemGetInfo_v2(nuint* free, nuint* total);

    // --- memory ---------------------------------------------------------------------------------------
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemAlloc_v2(ulong* devicePtr, nuint bytes);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemFree_v2(ulong devicePtr);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemAllocAsync(ulong* devicePtr, nuint bytes, nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemFreeAsync(ulong devicePtr, nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuDeviceGetDefaultMemPool(nint* pool, int device);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemPoolSetAttribute(nint pool, CuMemPoolAttribute attribute, void* value);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemPoolGetAttribute(nint pool, CuMemPoolAttribute attribute, void* value);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemPoolTrimTo(nint pool, nuint minBytesToKeep);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemHostAlloc(void** hostPtr, nuint bytes, uint flags);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemFreeHost(void* hostPtr);

    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemcpyHtoD_v2(ulong dst, void* src, nuint bytes);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemcpyDtoH_v2(void* dst, ulong src, nuint bytes);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemcpyDtoD_v2(ulong dst, ulong src, nuint bytes);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemcpyHtoDAsync_v2(ulong dst, void* src, nuint bytes, nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemcpyDtoHAsync_v2(void* dst, ulong src, nuint bytes, nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemcpyDtoDAsync_v2(ulong dst, ulong src, nuint bytes, nint stream);

    // The async memsets never had a 32-bit ancestor, so their names carry no _v2.
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemsetD8_v2(ulong dst, byte value, nuint count);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemsetD32_v2(ulong dst, uint value, nuint count);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemsetD8Async(ulong dst, byte value, nuint count, nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuMemsetD32Async(ulong dst, uint value, nuint count, nint stream);

    // --- modules and kernels --------------------------------------------------------------------------
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuModuleLoadData(nint* module, void* image);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuModuleUnload(nint module);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuModuleGetFunction(nint* function, nint module, byte* name);
    [LibraryImport(LibraryNames.Driver)]
    public static partial CuResult cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemBytes, nint stream, void** kernelParams, void** extra);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuFuncGetAttribute(int* value, CuFunctionAttribute attribute, nint function);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuFuncSetAttribute(nint function, CuFunctionAttribute attribute, int value);
    [LibraryImport(LibraryNames.Driver)]
    public static partial CuResult cuOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, nint function, int blockSize, nuint dynamicSharedMemBytes);

    // --- streams and events ---------------------------------------------------------------------------
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuStreamCreate(nint* stream, uint flags);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuStreamDestroy_v2(nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuStreamSynchronize(nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuStreamWaitEvent(nint stream, nint evt, uint flags);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuEventCreate(nint* evt, uint flags);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuEventRecord(nint evt, nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuEventSynchronize(nint evt);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuEventQuery(nint evt);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuEventDestroy_v2(nint evt);
    /// <summary>The old entry point; newer drivers add <c>cuEventElapsedTime_v2</c> (see <see cref="CuDriverOptional"/>).</summary>
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuEventElapsedTime(float* milliseconds, nint start, nint end);

    // --- graphs ---------------------------------------------------------------------------------------
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuStreamBeginCapture_v2(nint stream, CuStreamCaptureMode mode);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuStreamEndCapture(nint stream, nint* graph);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuGraphInstantiateWithFlags(nint* graphExec, nint graph, ulong flags);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuGraphLaunch(nint graphExec, nint stream);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuGraphExecDestroy(nint graphExec);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuGraphDestroy(nint graph);

    // --- errors and profiling -------------------------------------------------------------------------
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuGetErrorName(CuResult error, byte** name);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuGetErrorString(CuResult error, byte** description);
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuProfilerStart();
    [LibraryImport(LibraryNames.Driver)] public static partial CuResult cuProfilerStop();
}
