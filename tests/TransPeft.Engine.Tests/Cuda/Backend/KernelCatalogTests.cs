using System.Text.RegularExpressions;
using TransPeft.Cuda.Compile;
using TransPeft.Engine.Compute.Cuda;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The backend's kernel catalog against kernels/: every kernel it launches is defined in the file it names, with
/// exactly the parameter list the catalog packs (so a launch cannot pass an int where the kernel reads a float),
/// is documented in kernels/README.md under that file, and (with NVRTC) is exported by the compiled cubin. No GPU.
/// </summary>
public sealed partial class KernelCatalogTests
{
    private static string KernelsDirectory() => CudaTestEnvironment.RequireKernelsDirectory();

    /// <summary>kernel name → (file, parameter kinds) parsed from the sources on disk.</summary>
    private static Dictionary<string, (string File, ArgKind[] Parameters)> ParseSources() =>
        KernelDeclaration.Parse(KernelSourceSet.FromDirectory(KernelsDirectory()))
            .ToDictionary(k => k.Name, k => (k.File, k.Parameters.Select(KernelSignatureGenerator.Kind).ToArray()), StringComparer.Ordinal);

    [SkippableFact]
    public void EveryCatalogKernelIsDefinedWithTheParameterListTheBackendPacks()
    {
        var sources = ParseSources();
        foreach (var k in KernelCatalog.All)
        {
            Assert.True(sources.TryGetValue(k.Name, out var declared), $"{k.Name} is not defined in kernels/*.cu");
            Assert.Equal(k.File, declared.File);
            Assert.True(k.Parameters.SequenceEqual(declared.Parameters),
                $"{k.Name}: the catalog packs ({string.Join(", ", k.Parameters)}), the source declares ({string.Join(", ", declared.Parameters)})");
        }
        // And nothing in the sources is missing from the catalog (the backend loads every file's kernels by name).
        Assert.Equal(sources.Keys.Order(StringComparer.Ordinal), KernelCatalog.All.Select(k => k.Name).Order(StringComparer.Ordinal));
    }

    [SkippableFact]
    public void EveryKernelTheBackendLaunchesIsDocumentedInTheReadmeUnderItsFile()
    {
        var readme = File.ReadAllLines(Path.Combine(KernelsDirectory(), "README.md"));
        string? file = null;
        var documented = new HashSet<(string, string)>();
        foreach (var line in readme)
        {
            var f = Regex.Match(line, @"^##\s+`([\w.]+\.cu)`");
            if (f.Success) { file = f.Groups[1].Value; continue; }
            if (line.StartsWith("## ", StringComparison.Ordinal)) { file = null; continue; }
            var k = Regex.Match(line, @"^###\s+`(\w+)`\s*$");
            if (k.Success && file is not null) documented.Add((file, k.Groups[1].Value));
        }
        foreach (var k in KernelCatalog.All)
            Assert.True(documented.Contains((k.File, k.Name)), $"{k.Name} ({k.File}) has no '### `{k.Name}`' section under '## `{k.File}`' in kernels/README.md");
    }

    [SkippableFact]
    public void TheCatalogIsIndexedByKernelIdAndChecksArguments()
    {
        foreach (var id in Enum.GetValues<KernelId>()) Assert.Equal(id, KernelCatalog.Get(id).Id);
        KernelCatalog.CheckArguments(KernelId.ReduceSumF32, [KernelArgument.Null, KernelArgument.Null, KernelArgument.I64(3), KernelArgument.F32(1)]);
        var e = Assert.Throws<ArgumentException>(() =>
            KernelCatalog.CheckArguments(KernelId.ReduceSumF32, [KernelArgument.Null, KernelArgument.Null, KernelArgument.I32(3), KernelArgument.F32(1)]));
        Assert.Contains("reduce_sum_f32 takes (Ptr, Ptr, I64, F32)", e.Message);
        Assert.Throws<ArgumentException>(() => KernelCatalog.CheckArguments(KernelId.ReduceSumF32, [KernelArgument.Null]));
    }

    [SkippableTheory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void EveryCatalogKernelIsExportedByItsCompiledCubin(string arch)
    {
        CudaTestEnvironment.RequireNvrtc();
        var sources = KernelSourceSet.Embedded();
        var compiler = new KernelCompiler(null);
        foreach (var group in KernelCatalog.All.GroupBy(k => k.File))
        {
            var exported = compiler.Compile(sources, group.Key, arch).Kernels().Select(k => k.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var k in group) Assert.True(exported.Contains(k.Name), $"{k.Name} is not in the {arch} cubin of {group.Key}");
        }
    }
}
