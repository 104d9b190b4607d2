using System.Runtime.InteropServices;

namespace TransPeft.Cuda.Native;

/// <summary>
/// Driver entry points that only newer drivers export, looked up at run time with a fallback.
/// <c>cuEventElapsedTime_v2</c> (CUDA 12.8+) replaces <c>cuEventElapsedTime</c>; older drivers, such as
/// Debian's 535, have only the latter.
/// </summary>
internal static unsafe class CuDriverOptional
{
    private static delegate* unmanaged<float*, nint, nint, CuResult> s_elapsed;
    private static string? s_elapsedName;

    /// <summary>Which export <see cref="EventElapsedTime"/> calls (resolving it if needed).</summary>
    public static string EventElapsedTimeEntryPoint
    {
        get { ResolveElapsed(); return s_elapsedName!; }
    }

    public static CuResult EventElapsedTime(float* milliseconds, nint start, nint end)
    {
        if (s_elapsed == null) ResolveElapsed();
        return s_elapsed(milliseconds, start, end);
    }

    private static void ResolveElapsed()
    {
        if (s_elapsed != null) return;
        var driver = CudaLibraryResolver.Get(CudaLibraryKind.Driver).Handle;
        foreach (var name in new[] { "cuEventElapsedTime_v2", "cuEventElapsedTime" })
        {
            if (NativeLibrary.TryGetExport(driver, name, out var fn))
            {
                s_elapsedName = name;
                s_elapsed = (delegate* unmanaged<float*, nint, nint, CuResult>)fn;
                return;
            }
        }
        throw new EntryPointNotFoundException("The CUDA driver exports neither cuEventElapsedTime_v2 nor cuEventElapsedTime.");
    }
}
