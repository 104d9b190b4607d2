using System.Reflection;
using System.Runtime.InteropServices;

namespace TransPeft.Cuda.Native;

/// <summary>
/// The one <see cref="NativeLibrary.SetDllImportResolver"/> of this assembly: maps the logical names of
/// <see cref="LibraryNames"/> to libraries found by <see cref="CudaLibraryProbe"/>, once per process.
/// Every binding class calls <see cref="EnsureRegistered"/> from its static constructor, so the resolver is in
/// place before the runtime binds the first import. A missing library surfaces as
/// <see cref="CudaLibraryNotFoundException"/> at the first call into it.
/// </summary>
internal static class CudaLibraryResolver
{
    private static int s_registered;
    private static readonly Lock s_lock = new();
    private static readonly Dictionary<CudaLibraryKind, LoadedLibrary> s_loaded = [];

    public static void EnsureRegistered()
    {
        if (Interlocked.Exchange(ref s_registered, 1) == 0)
            NativeLibrary.SetDllImportResolver(typeof(CudaLibraryResolver).Assembly, Resolve);
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath) => libraryName switch
    {
        LibraryNames.Driver => Get(CudaLibraryKind.Driver).Handle,
        LibraryNames.Nvrtc => Get(CudaLibraryKind.Nvrtc).Handle,
        LibraryNames.Cublas => Get(CudaLibraryKind.Cublas).Handle,
        _ => 0,
    };

    /// <summary>The loaded library, probing on first use; throws <see cref="CudaLibraryNotFoundException"/>.</summary>
    public static LoadedLibrary Get(CudaLibraryKind kind)
    {
        lock (s_lock)
        {
            if (s_loaded.TryGetValue(kind, out var lib)) return lib;
            lib = CudaLibraryProbe.FromEnvironment().Load(kind, DriverDirectory());
            s_loaded[kind] = lib;
            return lib;
        }
    }

    /// <summary>Like <see cref="Get"/> but answers false (with the reason) instead of throwing.</summary>
    public static bool TryGet(CudaLibraryKind kind, out LoadedLibrary? library, out string? failure)
    {
        try
        {
            library = Get(kind);
            failure = null;
            return true;
        }
        catch (CudaLibraryNotFoundException e)
        {
            library = null;
            failure = e.Message;
            return false;
        }
    }

    /// <summary>The folder of the driver when it is already loaded (the toolkit libraries are often beside it).</summary>
    private static string? DriverDirectory() =>
        s_loaded.TryGetValue(CudaLibraryKind.Driver, out var d) ? d.Directory : null;
}
