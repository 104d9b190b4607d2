using System.Runtime.InteropServices;

namespace TransPeft.Cuda.Native;

/// <summary>
/// Finds and loads the CUDA libraries by their versioned sonames.
/// <para>
/// Why by hand: the driver must be the <c>libcuda.so.1</c> that matches the kernel module (a toolkit
/// <c>stubs/</c> copy answers every call with CUDA_ERROR_STUB_LIBRARY = 34), NVRTC and cuBLAS live in many
/// places (toolkit folders, distribution packages, PyTorch's wheels) and carry their major version in the
/// soname, and NVRTC dlopens a builtins library that must sit beside it. So one probe, in a fixed order:
/// </para>
/// <list type="number">
/// <item><c>TPEFT_CUDA_LIB_DIR</c> (a ':'-separated list): the user's override, always first;</item>
/// <item>for the driver only: the dynamic loader's own search (ldconfig cache, LD_LIBRARY_PATH), which is what every
/// other CUDA program on the machine uses;</item>
/// <item><c>CUDA_PATH</c> / <c>CUDA_HOME</c> (lib64, lib, targets/&lt;arch&gt;/lib);</item>
/// <item><c>LD_LIBRARY_PATH</c> entries;</item>
/// <item><c>/usr/local/cuda</c>, then <c>/usr/local/cuda-*</c> newest first (lib64, targets/*/lib);</item>
/// <item><c>/usr/local/nvidia/lib64</c>, the distribution's library folders, WSL's <c>/usr/lib/wsl/lib</c>;</item>
/// <item>the folder the driver was loaded from;</item>
/// <item>NVIDIA's Python wheels (<c>site-packages/nvidia/*/lib</c>, CUDA 13's <c>nvidia/cu13/lib</c>), as installed
/// beside PyTorch: the active Python's first (<c>VIRTUAL_ENV</c>, <c>CONDA_PREFIX</c>, the first python3 on
/// <c>PATH</c>), then the machine's usual prefixes;</item>
/// <item>for the other libraries, the dynamic loader's own search last.</item>
/// </list>
/// Any folder with a <c>stubs</c> path segment is skipped. Within a folder, names are tried newest first.
/// </summary>
internal sealed class CudaLibraryProbe
{
    public const string OverrideVariable = "TPEFT_CUDA_LIB_DIR";

    private readonly Func<string, string?> _getEnv;
    private readonly bool _machineDirectories;
    private readonly bool _systemLoader;

    /// <param name="getEnv">Environment lookup (tests pass their own).</param>
    /// <param name="machineDirectories">Include the fixed machine folders (/usr/local/cuda*, /usr/lib/..., wheels).</param>
    /// <param name="systemLoader">Also ask the dynamic loader to find the bare soname.</param>
    public CudaLibraryProbe(Func<string, string?> getEnv, bool machineDirectories = true, bool systemLoader = true)
    {
        _getEnv = getEnv;
        _machineDirectories = machineDirectories;
        _systemLoader = systemLoader;
    }

    public static CudaLibraryProbe FromEnvironment() => new(Environment.GetEnvironmentVariable);

    /// <summary>The sonames tried for a library, in order of preference.</summary>
    public static IReadOnlyList<string> FileNames(CudaLibraryKind kind) => kind switch
    {
        CudaLibraryKind.Driver => ["libcuda.so.1"],
        CudaLibraryKind.Nvrtc => ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"],
        CudaLibraryKind.Cublas => ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11"],
        CudaLibraryKind.Nvtx => ["libnvtx3interop.so.1", "libnvToolsExt.so.1"],
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static string Describe(CudaLibraryKind kind) => kind switch
    {
        CudaLibraryKind.Driver => "CUDA driver library (libcuda)",
        CudaLibraryKind.Nvrtc => "NVRTC runtime compiler (libnvrtc)",
        CudaLibraryKind.Cublas => "cuBLAS library (libcublas)",
        CudaLibraryKind.Nvtx => "NVTX library (libnvtx3interop / libnvToolsExt)",
        _ => kind.ToString(),
    };

    private static string Hint(CudaLibraryKind kind) => kind switch
    {
        CudaLibraryKind.Driver =>
            "Install the NVIDIA driver (it provides libcuda.so.1; a toolkit stubs/ copy does not work), or set " + OverrideVariable + " to the folder that holds libcuda.so.1.",
        CudaLibraryKind.Nvrtc =>
            "Install the CUDA toolkit's NVRTC (Debian: apt-get install libnvrtc11.2 from non-free; see tools/install-cuda-deps.sh), or set " + OverrideVariable + " to the folder that holds libnvrtc.so.* and libnvrtc-builtins.so.*.",
        CudaLibraryKind.Cublas =>
            "Install cuBLAS (CUDA toolkit, or the nvidia-cublas wheel that PyTorch brings), or set " + OverrideVariable + " to the folder that holds libcublas.so.* and libcublasLt.so.*.",
        _ => "Set " + OverrideVariable + " to the folder that holds it.",
    };

    /// <summary>The folders searched, in order, existing ones only, stubs removed (the loader's own search aside).</summary>
    public IReadOnlyList<string> SearchDirectories(string? driverDirectory = null) => CandidateDirectories(driverDirectory, out _);

    private List<string> CandidateDirectories(string? driverDirectory, out List<string> absent)
    {
        var dirs = new List<string>();
        var missing = new List<string>();
        absent = missing;
        void Add(string? d)
        {
            if (string.IsNullOrWhiteSpace(d)) return;
            string full;
            try { full = Path.GetFullPath(d); } catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException) { return; }
            full = full.TrimEnd('/');
            if (full.Length == 0) full = "/";
            if (IsStubPath(full) || dirs.Contains(full, StringComparer.Ordinal) || missing.Contains(full, StringComparer.Ordinal)) return;
            if (Directory.Exists(full)) dirs.Add(full);
            else missing.Add(full);
        }
        void AddToolkit(string root)
        {
            Add(Path.Combine(root, "lib64"));
            Add(Path.Combine(root, "lib"));
            Add(Path.Combine(root, "targets", TargetTriple, "lib"));
        }

        foreach (var d in SplitPathList(_getEnv(OverrideVariable))) Add(d);

        foreach (var v in new[] { "CUDA_PATH", "CUDA_HOME" })
            if (_getEnv(v) is { Length: > 0 } root) AddToolkit(root);
        foreach (var d in SplitPathList(_getEnv("LD_LIBRARY_PATH"))) Add(d);

        if (_machineDirectories)
        {
            AddToolkit("/usr/local/cuda");
            foreach (var root in VersionedToolkitRoots()) AddToolkit(root);
            Add("/usr/local/nvidia/lib64");
            Add("/usr/local/nvidia/lib");
            Add($"/usr/lib/{MultiarchTriple}");
            Add($"/lib/{MultiarchTriple}");
            Add("/usr/lib64");
            Add("/usr/lib");
            Add("/usr/lib/wsl/lib");
        }
        Add(driverDirectory);
        foreach (var d in PythonWheelLibraryDirectories()) Add(d);
        return dirs;
    }

    /// <summary>Loads <paramref name="kind"/> or throws <see cref="CudaLibraryNotFoundException"/>.</summary>
    public LoadedLibrary Load(CudaLibraryKind kind, string? driverDirectory = null)
    {
        if (TryLoad(kind, driverDirectory, out var lib, out var attempts)) return lib!;
        throw new CudaLibraryNotFoundException(kind, FileNames(kind), attempts, Hint(kind));
    }

    public bool TryLoad(CudaLibraryKind kind, string? driverDirectory, out LoadedLibrary? library, out IReadOnlyList<string> attempts)
    {
        var tried = new List<string>();
        attempts = tried;
        var names = FileNames(kind);
        var overrideDirs = SplitPathList(_getEnv(OverrideVariable)).Select(SafeFullPath).Where(d => d is not null).ToHashSet(StringComparer.Ordinal);
        var dirs = CandidateDirectories(driverDirectory, out var absentDirs);

        // The override folders come first for every library.
        foreach (var dir in dirs.Where(d => overrideDirs.Contains(d)))
            if (TryDirectory(kind, dir, names, tried, out library)) return true;

        if (kind == CudaLibraryKind.Driver && _systemLoader && TrySystemLoader(kind, names, tried, out library)) return true;

        foreach (var dir in dirs.Where(d => !overrideDirs.Contains(d)))
            if (TryDirectory(kind, dir, names, tried, out library)) return true;

        if (kind != CudaLibraryKind.Driver && _systemLoader && TrySystemLoader(kind, names, tried, out library)) return true;

        if (absentDirs.Count > 0) tried.Add($"folders that do not exist here: {string.Join(", ", absentDirs)}");
        library = null;
        return false;
    }

    private static bool TryDirectory(CudaLibraryKind kind, string dir, IReadOnlyList<string> names, List<string> tried, out LoadedLibrary? library)
    {
        library = null;
        var absent = new List<string>();
        foreach (var name in names)
        {
            var path = Path.Combine(dir, name);
            if (!File.Exists(path)) { absent.Add(name); continue; }
            var real = RealPath(path);
            if (IsStubPath(real)) { tried.Add($"{path}: skipped, it resolves to a stubs/ copy ({real})"); continue; }

            var preloaded = new List<string>();
            // cuBLAS needs cuBLASLt from the same release; it is a DT_NEEDED dependency without RUNPATH in many
            // layouts, so load it first from the same folder and the loader then finds it by soname.
            if (kind == CudaLibraryKind.Cublas)
            {
                var lt = Path.Combine(dir, name.Replace("libcublas.", "libcublasLt.", StringComparison.Ordinal));
                if (File.Exists(lt))
                {
                    if (!TryLoadFile(lt, out _, out var ltError)) { tried.Add($"{lt}: exists but failed to load: {ltError}"); continue; }
                    preloaded.Add(lt);
                }
            }
            if (!TryLoadFile(path, out var handle, out var error)) { tried.Add($"{path}: exists but failed to load: {error}"); continue; }
            if (kind == CudaLibraryKind.Nvrtc) PreloadNvrtcBuiltins(dir, name, preloaded);
            library = new LoadedLibrary(kind, handle, path, preloaded);
            return true;
        }
        if (absent.Count > 0) tried.Add($"{dir}: no {string.Join(" / ", absent)}");
        return false;
    }

    private static bool TrySystemLoader(CudaLibraryKind kind, IReadOnlyList<string> names, List<string> tried, out LoadedLibrary? library)
    {
        library = null;
        foreach (var name in names)
        {
            if (!TryLoadFile(name, out var handle, out var error))
            {
                tried.Add($"dynamic loader search for {name} (ldconfig cache, LD_LIBRARY_PATH): {error}");
                continue;
            }
            var path = LoadedPathOf(name) ?? name;
            if (IsStubPath(path))
            {
                tried.Add($"dynamic loader search for {name}: found a stubs/ copy ({path}), ignored");
                continue;
            }
            var preloaded = new List<string>();
            if (kind == CudaLibraryKind.Nvrtc && Path.GetDirectoryName(path) is { Length: > 0 } dir) PreloadNvrtcBuiltins(dir, name, preloaded);
            library = new LoadedLibrary(kind, handle, path, preloaded);
            return true;
        }
        return false;
    }

    /// <summary>
    /// NVRTC dlopens <c>libnvrtc-builtins.so.MAJOR.MINOR</c> at its first compile. Loading it now from the folder
    /// NVRTC came from makes that dlopen find it by soname, whatever the loader's search path is.
    /// </summary>
    private static void PreloadNvrtcBuiltins(string dir, string nvrtcName, List<string> preloaded)
    {
        var major = nvrtcName["libnvrtc.so.".Length..].Split('.')[0];
        string[] candidates;
        try { candidates = Directory.GetFiles(dir, $"libnvrtc-builtins.so.{major}*"); }
        catch (IOException) { return; }
        catch (UnauthorizedAccessException) { return; }
        var best = candidates
            .Select(p => (Path: p, Version: ParseSuffixVersion(Path.GetFileName(p)["libnvrtc-builtins.so.".Length..])))
            .OrderByDescending(c => c.Version)
            .FirstOrDefault();
        if (best.Path is not null && TryLoadFile(best.Path, out _, out _)) preloaded.Add(best.Path);
    }

    private static Version ParseSuffixVersion(string s)
    {
        var parts = s.Split('.').Select(p => int.TryParse(p, out var v) ? v : 0).Take(4).ToArray();
        return parts.Length switch
        {
            0 => new Version(0, 0),
            1 => new Version(parts[0], 0),
            2 => new Version(parts[0], parts[1]),
            3 => new Version(parts[0], parts[1], parts[2]),
            _ => new Version(parts[0], parts[1], parts[2], parts[3]),
        };
    }

    private static bool TryLoadFile(string pathOrName, out nint handle, out string error)
    {
        try
        {
            handle = NativeLibrary.Load(pathOrName);
            error = "";
            return true;
        }
        catch (DllNotFoundException e)
        {
            handle = 0;
            error = LoaderError(e.Message);
            return false;
        }
        catch (BadImageFormatException e)
        {
            handle = 0;
            error = e.Message.ReplaceLineEndings(" ");
            return false;
        }
    }

    /// <summary>The runtime wraps dlerror() in advice about strace and LD_DEBUG; keep dlerror's own words.</summary>
    private static string LoaderError(string message)
    {
        const string marker = "environment variable:";
        var i = message.IndexOf(marker, StringComparison.Ordinal);
        var core = i >= 0 ? message[(i + marker.Length)..] : message;
        return core.ReplaceLineEndings(" ").Trim();
    }

    /// <summary>Where the dynamic loader took a library from: the first mapping in /proc/self/maps whose file
    /// name starts with the soname's stem.</summary>
    internal static string? LoadedPathOf(string soname)
    {
        var stem = soname.Split(".so", 2)[0] + ".so";
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                var slash = line.IndexOf('/');
                if (slash < 0) continue;
                var path = line[slash..];
                var file = Path.GetFileName(path);
                if (file.StartsWith(stem, StringComparison.Ordinal) && (file.Length == stem.Length || file[stem.Length] == '.'))
                    return path;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    private static string RealPath(string path)
    {
        try
        {
            var target = File.ResolveLinkTarget(path, returnFinalTarget: true);
            return target?.FullName ?? Path.GetFullPath(path);
        }
        catch (IOException) { return path; }
        catch (UnauthorizedAccessException) { return path; }
    }

    private static bool IsStubPath(string path) =>
        path.Split('/').Any(seg => seg.Equals("stubs", StringComparison.Ordinal));

    private static string? SafeFullPath(string d)
    {
        try { var f = Path.GetFullPath(d).TrimEnd('/'); return f.Length == 0 ? "/" : f; }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException) { return null; }
    }

    private static IEnumerable<string> SplitPathList(string? value) =>
        string.IsNullOrEmpty(value) ? [] : value.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static string TargetTriple => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "sbsa-linux" : "x86_64-linux";
    private static string MultiarchTriple => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "aarch64-linux-gnu" : "x86_64-linux-gnu";

    /// <summary>/usr/local/cuda-X.Y folders, newest first.</summary>
    private static IEnumerable<string> VersionedToolkitRoots()
    {
        string[] roots;
        try { roots = Directory.GetDirectories("/usr/local", "cuda-*"); }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
        return roots.OrderByDescending(r => ParseSuffixVersion(Path.GetFileName(r)["cuda-".Length..]));
    }

    /// <summary>
    /// NVIDIA's pip wheels put each library in site-packages/nvidia/&lt;component&gt;/lib (CUDA 13's wheels: one
    /// nvidia/cu13/lib). The active Python comes first: an activated venv or conda env, then the first python3 on PATH
    /// (a venv's bin/ is often on PATH without being activated); the machine's usual prefixes follow.
    /// </summary>
    private IEnumerable<string> PythonWheelLibraryDirectories()
    {
        var prefixes = new List<string>();
        if (_getEnv("VIRTUAL_ENV") is { Length: > 0 } venv) prefixes.Add(Path.Combine(venv, "lib"));
        if (_getEnv("CONDA_PREFIX") is { Length: > 0 } conda) prefixes.Add(Path.Combine(conda, "lib"));
        foreach (var bin in SplitPathList(_getEnv("PATH")))
            if (File.Exists(Path.Combine(bin, "python3")))
            {
                prefixes.Add(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(bin).TrimEnd('/')) ?? "/", "lib"));
                break;
            }
        if (_machineDirectories)
        {
            prefixes.AddRange(["/usr/local/lib", "/usr/lib", "/opt/conda/lib"]);
            if (_getEnv("HOME") is { Length: > 0 } home) prefixes.Add(Path.Combine(home, ".local", "lib"));
        }
        foreach (var prefix in prefixes)
        {
            string[] pythons;
            try { pythons = Directory.Exists(prefix) ? Directory.GetDirectories(prefix, "python3*") : []; }
            catch (IOException) { continue; }
            catch (UnauthorizedAccessException) { continue; }
            foreach (var py in pythons.Order(StringComparer.Ordinal))
                foreach (var site in new[] { "site-packages", "dist-packages" })
                {
                    var nvidia = Path.Combine(py, site, "nvidia");
                    if (!Directory.Exists(nvidia)) continue;
                    string[] components;
                    try { components = Directory.GetDirectories(nvidia); }
                    catch (IOException) { continue; }
                    catch (UnauthorizedAccessException) { continue; }
                    foreach (var c in components.Order(StringComparer.Ordinal)) yield return Path.Combine(c, "lib");
                }
        }
    }
}
