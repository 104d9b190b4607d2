using System.Text.RegularExpressions;
using TransPeft.Cuda.Compile;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>
/// Text checks on kernels/ that need no GPU and no NVRTC: the CUDA backend looks kernels up by their
/// plain (extern "C") names, so the names each file defines must be exactly the ones kernels/README.md
/// documents; and NVRTC compiles the files without any toolkit header, so the only include allowed is
/// our own prelude.
/// </summary>
public sealed partial class KernelSourcesTests
{
    [GeneratedRegex("""extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(""")]
    private static partial Regex ExternCKernel();

    [GeneratedRegex(@"\b__global__\b")]
    private static partial Regex GlobalQualifier();

    [GeneratedRegex(@"^\s*#\s*include\s*(\S.*)$", RegexOptions.Multiline)]
    private static partial Regex IncludeLine();

    [GeneratedRegex(@"^##\s+`([\w.]+\.cu)`")]
    private static partial Regex ReadmeFileHeading();

    [GeneratedRegex(@"^###\s+`(\w+)`\s*$")]
    private static partial Regex ReadmeKernelHeading();

    private static string KernelsDirectory() => CudaTestEnvironment.RequireKernelsDirectory();

    /// <summary>Source without comments, so a name mentioned in a comment is not taken for a kernel.</summary>
    private static string StripComments(string source)
    {
        var noBlocks = Regex.Replace(source, @"/\*.*?\*/", " ", RegexOptions.Singleline);
        return Regex.Replace(noBlocks, @"//[^\n]*", "");
    }

    private static string[] KernelNamesInSource(string path) =>
        KernelDeclaration.Parse(Path.GetFileName(path), File.ReadAllText(path)).Select(k => k.Name).Order(StringComparer.Ordinal).ToArray();

    /// <summary>README sections "## `file.cu` ..." each list their kernels as "### `name`" headings.</summary>
    private static Dictionary<string, List<string>> KernelNamesInReadme(string readmePath)
    {
        var result = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        string? file = null;
        int lineNumber = 0;
        foreach (var line in File.ReadLines(readmePath))
        {
            lineNumber++;
            var fileHeading = ReadmeFileHeading().Match(line);
            if (fileHeading.Success)
            {
                file = fileHeading.Groups[1].Value;
                Assert.False(result.ContainsKey(file), $"{readmePath}:{lineNumber}: section for {file} appears twice");
                result[file] = [];
                continue;
            }
            if (line.StartsWith("## ", StringComparison.Ordinal)) { file = null; continue; }
            var kernelHeading = ReadmeKernelHeading().Match(line);
            if (kernelHeading.Success)
            {
                Assert.True(file is not null, $"{readmePath}:{lineNumber}: kernel heading '{line}' is not inside a '## `file.cu`' section");
                result[file!].Add(kernelHeading.Groups[1].Value);
            }
        }
        return result;
    }

    [SkippableFact]
    public void EveryKernelFileDefinesExactlyTheKernelsItsReadmeSectionDocuments()
    {
        var dir = KernelsDirectory();
        var readme = Path.Combine(dir, "README.md");
        Assert.True(File.Exists(readme), $"missing {readme}");
        var documented = KernelNamesInReadme(readme);
        var files = Directory.GetFiles(dir, "*.cu").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray();

        Assert.NotEmpty(files);
        Assert.Equal(files, documented.Keys.Order(StringComparer.Ordinal).ToArray());
        foreach (var file in files)
        {
            var inSource = KernelNamesInSource(Path.Combine(dir, file!));
            var inReadme = documented[file!].Order(StringComparer.Ordinal).ToArray();
            Assert.True(inSource.Length > 0, $"{file} defines no extern \"C\" __global__ kernel");
            Assert.True(inSource.SequenceEqual(inReadme),
                $"{file}: kernels in source [{string.Join(", ", inSource)}] differ from kernels/README.md [{string.Join(", ", inReadme)}]");
        }
    }

    [SkippableFact]
    public void KernelNamesAreUniqueAcrossFiles()
    {
        var dir = KernelsDirectory();
        var owners = Directory.GetFiles(dir, "*.cu")
            .SelectMany(f => KernelNamesInSource(f).Select(name => (name, file: Path.GetFileName(f))))
            .GroupBy(x => x.name)
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.Key} in {string.Join(" and ", g.Select(x => x.file))}")
            .ToArray();
        Assert.True(owners.Length == 0, "kernel names defined more than once: " + string.Join("; ", owners));
    }

    [SkippableFact]
    public void EveryGlobalFunctionIsExternC()
    {
        // A kernel without extern "C" gets a C++-mangled symbol that a lookup by name would not find.
        foreach (var path in Directory.GetFiles(KernelsDirectory(), "*.cu"))
        {
            var source = StripComments(File.ReadAllText(path));
            int globals = GlobalQualifier().Matches(source).Count;
            int externC = ExternCKernel().Matches(source).Count;
            Assert.True(globals == externC, $"{Path.GetFileName(path)}: {globals} __global__ functions but {externC} are extern \"C\" void");
        }
    }

    [SkippableFact]
    public void KernelSourcesIncludeNothingButThePrelude()
    {
        var dir = KernelsDirectory();
        var prelude = Path.Combine(dir, "prelude.cuh");
        Assert.True(File.Exists(prelude), $"missing {prelude}");
        var preludeIncludes = IncludeLine().Matches(StripComments(File.ReadAllText(prelude))).Select(m => m.Value.Trim()).ToArray();
        Assert.True(preludeIncludes.Length == 0, "prelude.cuh must include nothing (NVRTC has no toolkit headers): " + string.Join(", ", preludeIncludes));

        foreach (var path in Directory.GetFiles(dir, "*.cu"))
        {
            var includes = IncludeLine().Matches(StripComments(File.ReadAllText(path))).Select(m => m.Groups[1].Value.Trim()).ToArray();
            Assert.True(includes.SequenceEqual(["\"prelude.cuh\""]),
                $"{Path.GetFileName(path)} must include exactly \"prelude.cuh\", found: [{string.Join(", ", includes)}]");
        }
    }
}
