using System.Reflection;

namespace TransPeft.Cuda.Compile;

/// <summary>
/// The kernel sources: every <c>kernels/*.cu</c> plus the headers (<c>kernels/*.cuh</c>, the prelude first) that
/// NVRTC receives in memory. They ship embedded in this assembly (so a published or NativeAOT binary needs no
/// kernels folder); <c>TPEFT_KERNELS_DIR</c> points at a folder instead, to try edits without rebuilding.
/// </summary>
public sealed class KernelSourceSet
{
    public const string DirectoryVariable = "TPEFT_KERNELS_DIR";
    public const string PreludeName = "prelude.cuh";
    private const string ResourcePrefix = "kernels/";

    private KernelSourceSet(string origin, IReadOnlyList<KernelSourceFile> files, IReadOnlyList<KernelHeader> headers)
    {
        Origin = origin;
        Files = files;
        Headers = headers;
    }

    /// <summary>Where the sources came from, for messages.</summary>
    public string Origin { get; }

    /// <summary>The .cu files, sorted by name.</summary>
    public IReadOnlyList<KernelSourceFile> Files { get; }

    /// <summary>The .cuh headers, <see cref="PreludeName"/> first.</summary>
    public IReadOnlyList<KernelHeader> Headers { get; }

    public static KernelSourceSet FromDirectory(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"Kernel source folder '{directory}' does not exist.");
        var files = Directory.GetFiles(directory, "*.cu").Order(StringComparer.Ordinal)
            .Select(p => new KernelSourceFile(Path.GetFileName(p), File.ReadAllText(p))).ToList();
        var headers = Directory.GetFiles(directory, "*.cuh")
            .Select(p => new KernelHeader(Path.GetFileName(p), File.ReadAllText(p))).ToList();
        return new KernelSourceSet($"folder {Path.GetFullPath(directory)}", files, PreludeFirst(headers));
    }

    /// <summary>The sources embedded into this assembly at build time (empty when kernels/ had none).</summary>
    public static KernelSourceSet Embedded()
    {
        var asm = typeof(KernelSourceSet).Assembly;
        var files = new List<KernelSourceFile>();
        var headers = new List<KernelHeader>();
        foreach (var name in asm.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var text = ReadResource(asm, name);
            var file = name[ResourcePrefix.Length..];
            if (file.EndsWith(".cu", StringComparison.Ordinal)) files.Add(new KernelSourceFile(file, text));
            else if (file.EndsWith(".cuh", StringComparison.Ordinal)) headers.Add(new KernelHeader(file, text));
        }
        return new KernelSourceSet("sources embedded in TransPeft.Cuda", files, PreludeFirst(headers));
    }

    /// <summary><c>TPEFT_KERNELS_DIR</c> when set, else the embedded sources.</summary>
    public static KernelSourceSet Default() =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } dir ? FromDirectory(dir) : Embedded();

    private static string ReadResource(Assembly asm, string name)
    {
        using var s = asm.GetManifestResourceStream(name) ?? throw new InvalidOperationException($"embedded resource {name} vanished");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }

    private static List<KernelHeader> PreludeFirst(List<KernelHeader> headers) =>
        headers.OrderBy(h => h.IncludeName == PreludeName ? 0 : 1).ThenBy(h => h.IncludeName, StringComparer.Ordinal).ToList();
}
