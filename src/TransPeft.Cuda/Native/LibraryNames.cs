namespace TransPeft.Cuda.Native;

/// <summary>
/// Logical library names used by the <c>[LibraryImport]</c> declarations. They are deliberately not real file
/// names: nothing binds unless <see cref="CudaLibraryResolver"/> maps them to a probed, versioned soname, so a
/// toolkit <c>stubs/libcuda.so</c> or an unversioned dev symlink can never be picked up by accident.
/// </summary>
internal static class LibraryNames
{
    public const string Driver = "tpeft-cuda-driver";
    public const string Nvrtc = "tpeft-nvrtc";
    public const string Cublas = "tpeft-cublas";
}
