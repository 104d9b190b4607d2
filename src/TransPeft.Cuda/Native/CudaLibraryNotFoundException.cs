namespace TransPeft.Cuda.Native;

/// <summary>
/// A CUDA library could not be loaded. The message names the library, every file name tried and every place
/// looked in (with the loader's own error where a file existed but failed to load), so the fix is obvious:
/// install the package, or point <c>TPEFT_CUDA_LIB_DIR</c> at the folder that holds it.
/// </summary>
public sealed class CudaLibraryNotFoundException : DllNotFoundException
{
    public CudaLibraryNotFoundException(CudaLibraryKind library, IReadOnlyList<string> fileNames, IReadOnlyList<string> attempts, string hint)
        : base(BuildMessage(library, fileNames, attempts, hint))
    {
        Library = library;
        FileNames = fileNames;
        Attempts = attempts;
    }

    public CudaLibraryKind Library { get; }

    /// <summary>The sonames tried, in order of preference.</summary>
    public IReadOnlyList<string> FileNames { get; }

    /// <summary>One line per place looked in, with what was found there.</summary>
    public IReadOnlyList<string> Attempts { get; }

    private static string BuildMessage(CudaLibraryKind library, IReadOnlyList<string> fileNames, IReadOnlyList<string> attempts, string hint)
    {
        var sb = new System.Text.StringBuilder();
        sb.Append("Could not load the ").Append(CudaLibraryProbe.Describe(library))
          .Append(". Names tried: ").Append(string.Join(", ", fileNames)).Append('.');
        sb.AppendLine().Append("Places tried (in order):");
        foreach (var a in attempts) sb.AppendLine().Append("  - ").Append(a);
        if (attempts.Count == 0) sb.AppendLine().Append("  (none: no candidate folder exists)");
        sb.AppendLine().Append(hint);
        return sb.ToString();
    }
}
