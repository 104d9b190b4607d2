using System.Runtime.InteropServices;

namespace TransPeft.Cuda.Native;

/// <summary>
/// NVRTC bindings (blittable; strings are UTF-8 <c>byte*</c>, <c>nvrtcResult</c> is <c>int</c>).
/// <c>nvrtcGetCUBIN</c> needs NVRTC 11.1+, so every probed version (11.2 soname = 11.x, 12, 13) has it.
/// </summary>
internal static unsafe partial class Nvrtc
{
    static Nvrtc() => CudaLibraryResolver.EnsureRegistered();

    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcVersion(int* major, int* minor);
    [LibraryImport(LibraryNames.Nvrtc)]
    public static partial int nvrtcCreateProgram(nint* program, byte* source, byte* name, int numHeaders, byte** headers, byte** includeNames);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcCompileProgram(nint program, int numOptions, byte** options);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcGetProgramLogSize(nint program, nuint* size);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcGetCUBINSize(nint program, nuint* size);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcGetCUBIN(nint program, byte* cubin);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcGetPTXSize(nint program, nuint* size);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcGetPTX(nint program, byte* ptx);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcAddNameExpression(nint program, byte* nameExpression);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcGetLoweredName(nint program, byte* nameExpression, byte** loweredName);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial int nvrtcDestroyProgram(nint* program);
    [LibraryImport(LibraryNames.Nvrtc)] public static partial byte* nvrtcGetErrorString(int result);

    /// <summary>NVRTC's own symbolic name for a status (it returns "NVRTC_ERROR_COMPILATION" etc.).</summary>
    public static string ErrorName(int result)
    {
        try
        {
            var p = nvrtcGetErrorString(result);
            if (p != null && Marshal.PtrToStringUTF8((nint)p) is { } s && s.StartsWith("NVRTC_", StringComparison.Ordinal) && !s.Contains(' '))
                return s;
        }
        catch (DllNotFoundException) { }
        catch (EntryPointNotFoundException) { }
        return CudaErrorNames.NvrtcFromTable(result);
    }
}
