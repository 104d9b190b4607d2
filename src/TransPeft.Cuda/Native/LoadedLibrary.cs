namespace TransPeft.Cuda.Native;

/// <summary>A library the probe loaded: its handle, the file it came from and what was preloaded beside it.</summary>
internal sealed record LoadedLibrary(CudaLibraryKind Kind, nint Handle, string Path, IReadOnlyList<string> Preloaded)
{
    public string? Directory => System.IO.Path.GetDirectoryName(Path);
}
