using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using TransPeft.Cuda.Compile;

namespace TransPeft.KernelEmulation;

/// <summary>
/// Builds the shared library behind <c>--device cuda-emulated</c>: every kernels/*.cu compiled by g++ (12 or newer,
/// C++20) as ordinary C++ against tools/kernel-emulator/emu.h (fibers for CUDA threads, warps, barriers, shuffles,
/// the mma.sync/ldmatrix/cp.async fragment layouts, bf16), with one C trampoline per kernel (emu_abi.h) that takes its
/// arguments like cuLaunchKernel. The engine only loads the result (CudaBackend.TryCreateEmulated); building it
/// starts processes, so it lives here, outside the engine.
/// <para>
/// Cached by content: the file name carries a SHA-256 of the emulator headers, every kernel source, the generated
/// trampolines, the compiler flags and the compiler's version, so an edit to any of them builds a new library and an
/// unchanged tree reuses the old one (written to a temporary name and renamed: concurrent builders never see half a
/// file).
/// </para>
/// </summary>
public static class HostKernelLibrary
{
    /// <summary>The oldest g++ the emulator is tested with (C++20).</summary>
    public const int MinimumGccMajor = 12;

    private static readonly string[] Flags = ["-std=c++20", "-O2", "-fPIC", "-shared", "-pthread", "-fvisibility=hidden", "-w"];
    private static readonly Lock s_lock = new();

    /// <summary><c>$XDG_CACHE_HOME/tpeft/kernel-emulation</c>, else <c>~/.cache/tpeft/kernel-emulation</c>.</summary>
    public static string DefaultCacheDirectory()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = xdg is { Length: > 0 } ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "tpeft", "kernel-emulation");
    }

    /// <summary>
    /// The library for <paramref name="sources"/> (default: the kernels embedded in TransPeft.Cuda), built now unless
    /// the cache has it. False with a one-line <paramref name="reason"/> when there is no usable g++ or it fails.
    /// </summary>
    /// <param name="compilerSearchPath">Folders searched for g++ (':'-separated; null: PATH).</param>
    public static bool TryBuild(string? cacheDirectory, out string? libraryPath, out string reason, KernelSourceSet? sources = null, string? compilerSearchPath = null)
    {
        libraryPath = null;
        sources ??= KernelSourceSet.Default();
        cacheDirectory ??= DefaultCacheDirectory();
        if (!TryFindCompiler(out var gcc, out var version, out reason, compilerSearchPath)) return false;

        var units = TranslationUnits(sources);
        var key = CacheKey(sources, units, version);
        var target = Path.Combine(cacheDirectory, $"libtpeft-kernels-emulated-{key[..16]}.so");
        lock (s_lock)
        {
            if (File.Exists(target)) { libraryPath = target; reason = ""; return true; }
            string? work = null;
            try
            {
                Directory.CreateDirectory(cacheDirectory);
                work = Directory.CreateTempSubdirectory("tpeft-kernel-emulation-").FullName;
                File.WriteAllText(Path.Combine(work, "emu.h"), Resource("emu.h"));
                File.WriteAllText(Path.Combine(work, "emu_abi.h"), Resource("emu_abi.h"));
                foreach (var h in sources.Headers) File.WriteAllText(Path.Combine(work, h.IncludeName), h.Text);
                foreach (var f in sources.Files) File.WriteAllText(Path.Combine(work, f.Name), f.Text);
                foreach (var (name, text) in units) File.WriteAllText(Path.Combine(work, name), text);

                var temp = Path.Combine(cacheDirectory, $".{Path.GetFileName(target)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
                var args = new List<string>(Flags) { "-I", work, "-o", temp };
                args.AddRange(units.Select(u => Path.Combine(work, u.Name)));
                var (code, output) = Run(gcc, args, work);
                if (code != 0)
                {
                    File.Delete(temp);
                    var first = output.Split('\n').FirstOrDefault(l => l.Contains("error", StringComparison.Ordinal)) ?? output.Split('\n')[0];
                    reason = $"g++ could not build the emulated kernels (exit {code}): {first.Trim()}";
                    return false;
                }
                File.Move(temp, target, overwrite: true);
                libraryPath = target;
                reason = "";
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                reason = $"cannot build the emulated kernels in {cacheDirectory}: {e.Message}";
                return false;
            }
            finally
            {
                if (work is not null) try { Directory.Delete(work, recursive: true); } catch (IOException) { }
            }
        }
    }

    /// <summary>One translation unit per kernel file (helpers of different files may share names): the emulator, the
    /// file as NVRTC sees it, then one trampoline per extern "C" kernel.</summary>
    internal static List<(string Name, string Text)> TranslationUnits(KernelSourceSet sources)
    {
        var units = new List<(string, string)>();
        bool first = true;
        foreach (var file in sources.Files)
        {
            var sb = new StringBuilder();
            sb.Append("// generated by TransPeft.KernelEmulation: ").Append(file.Name).Append(" on the host\n");
            sb.Append("#include \"emu.h\"\n#include \"").Append(file.Name).Append("\"\n");
            if (first) sb.Append("#define TPEFT_EMU_ABI_MAIN\n");
            sb.Append("#include \"emu_abi.h\"\n");
            foreach (var k in KernelDeclaration.Parse(file.Name, file.Text)) sb.Append("TPEFT_EMU_KERNEL(").Append(k.Name).Append(")\n");
            units.Add((Path.GetFileNameWithoutExtension(file.Name) + ".emu.cpp", sb.ToString()));
            first = false;
        }
        return units;
    }

    private static string CacheKey(KernelSourceSet sources, List<(string Name, string Text)> units, string compilerVersion)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) { h.AppendData(Encoding.UTF8.GetBytes(s)); h.AppendData([0]); }
        Add("tpeft-kernel-emulation-v1");
        Add(compilerVersion);
        foreach (var f in Flags) Add(f);
        Add(Resource("emu.h"));
        Add(Resource("emu_abi.h"));
        foreach (var x in sources.Headers) { Add(x.IncludeName); Add(x.Text); }
        foreach (var x in sources.Files) { Add(x.Name); Add(x.Text); }
        foreach (var (n, t) in units) { Add(n); Add(t); }
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    /// <summary>g++ (or g++-14/13/12), version 12 or newer, in <paramref name="searchPath"/> (null: PATH).</summary>
    public static bool TryFindCompiler(out string path, out string version, out string reason, string? searchPath = null)
    {
        path = version = "";
        var dirs = (searchPath ?? Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries);
        var tried = new List<string>();
        foreach (var name in new[] { "g++", "g++-14", "g++-13", "g++-12" })
            foreach (var dir in dirs)
            {
                var candidate = Path.Combine(dir, name);
                if (!File.Exists(candidate)) continue;
                var (code, output) = Run(candidate, ["-dumpfullversion"], null);
                var v = output.Trim();
                if (code == 0 && int.TryParse(v.Split('.')[0], out int major))
                {
                    if (major >= MinimumGccMajor) { path = candidate; version = v; reason = ""; return true; }
                    tried.Add($"{candidate} is {v}");
                }
                break;
            }
        reason = tried.Count == 0
            ? $"cuda-emulated needs g++ {MinimumGccMajor} or newer on PATH to compile kernels/*.cu for the host, and there is none (install g++)"
            : $"cuda-emulated needs g++ {MinimumGccMajor} or newer: {string.Join(", ", tried)}";
        return false;
    }

    private static (int Code, string Output) Run(string exe, IEnumerable<string> args, string? workingDirectory)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new IOException($"cannot start {exe}");
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout + stderr.Result);
    }

    private static string Resource(string name)
    {
        var asm = Assembly.GetExecutingAssembly();
        using var s = asm.GetManifestResourceStream("kernel-emulator/" + name) ?? throw new InvalidOperationException($"embedded resource kernel-emulator/{name} is missing");
        using var r = new StreamReader(s);
        return r.ReadToEnd();
    }
}
