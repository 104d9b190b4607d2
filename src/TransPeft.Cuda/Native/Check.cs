using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace TransPeft.Cuda.Native;

/// <summary>
/// Turns status codes into exceptions. The success path is one compare; the call name is passed as a constant
/// (<c>nameof(CuDriver.cuMemAlloc_v2)</c>), so checking allocates nothing.
/// </summary>
internal static unsafe class Check
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Driver(CuResult result, string call)
    {
        if (result != CuResult.Success) ThrowDriver(result, call);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Cublas(int status, string call)
    {
        if (status != 0) ThrowCublas(status, call);
    }

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowDriver(CuResult result, string call) => throw DriverException(result, call);

    [DoesNotReturn, MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowCublas(int status, string call) =>
        throw new CudaException(call, CudaErrorNames.Cublas(status), status, null);

    /// <param name="context">What was being done, appended to the driver's description (a kernel name, a device).</param>
    public static CudaException DriverException(CuResult result, string call, string? context = null)
    {
        var code = (int)result;
        var name = DriverErrorName(code);
        var detail = DriverErrorString(code);
        if (context is not null) detail = detail is null ? context : $"{detail}; {context}";
        if (result == CuResult.ErrorStubLibrary)
            detail += " (the libcuda.so.1 that was loaded is the CUDA toolkit's stub; install the NVIDIA driver or point TPEFT_CUDA_LIB_DIR at the real one)";
        return new CudaException(call, name, code, detail);
    }

    /// <summary>The driver's <c>cuGetErrorName</c>, or the built-in table when the driver cannot answer.</summary>
    public static string DriverErrorName(int code)
    {
        try
        {
            byte* p = null;
            if (CuDriver.cuGetErrorName((CuResult)code, &p) == CuResult.Success && p != null)
                return System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)p)!;
        }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
        return CudaErrorNames.DriverFromTable(code);
    }

    private static string? DriverErrorString(int code)
    {
        try
        {
            byte* p = null;
            if (CuDriver.cuGetErrorString((CuResult)code, &p) == CuResult.Success && p != null)
                return System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)p)!;
        }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
        return null;
    }
}
