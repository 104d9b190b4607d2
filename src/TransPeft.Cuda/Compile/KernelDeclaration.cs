using System.Text.RegularExpressions;

namespace TransPeft.Cuda.Compile;

/// <summary>
/// One <c>extern "C" __global__ void name(params)</c> of a kernel file, as written: the single source of the
/// kernels' names and parameter lists, which the backend's catalog, the kernels README and the host emulation's
/// trampolines are checked against or generated from.
/// </summary>
/// <param name="Parameters">Each parameter's declaration, e.g. <c>const bf16* __restrict__ inp</c>.</param>
public sealed partial record KernelDeclaration(string File, string Name, IReadOnlyList<string> Parameters)
{
    [GeneratedRegex("""extern\s+"C"\s+__global__\s+void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(\w+)\s*\(([^)]*)\)""")]
    private static partial Regex Declaration();

    /// <summary>The kernels of one file, in source order; comments are ignored.</summary>
    public static IReadOnlyList<KernelDeclaration> Parse(string file, string source)
    {
        var code = Regex.Replace(Regex.Replace(source, @"/\*.*?\*/", " ", RegexOptions.Singleline), @"//[^\n]*", "");
        return Declaration().Matches(code)
            .Select(m => new KernelDeclaration(file, m.Groups[1].Value,
                m.Groups[2].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                    .Select(p => Regex.Replace(p, @"\s+", " ")).ToArray()))
            .ToList();
    }

    /// <summary>Every kernel of a source set.</summary>
    public static IReadOnlyList<KernelDeclaration> Parse(KernelSourceSet sources) =>
        sources.Files.SelectMany(f => Parse(f.Name, f.Text)).ToList();
}
