using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using TransPeft.Cuda.Native;

namespace TransPeft.Cuda.Compile;

/// <summary>
/// Compiles kernel sources with NVRTC into cubin for one GPU architecture, with a disk cache.
/// <para>
/// Options: <c>--gpu-architecture=sm_XX</c> (real SASS, so ptxas checks our inline PTX now rather than the driver's
/// JIT at load time), <c>--std=c++17</c>, <c>-default-device</c> (unannotated functions are device functions),
/// <c>-lineinfo</c> (Nsight maps SASS back to source lines) and <c>--ptxas-options=-v</c> (ptxas reports registers
/// and spills into the log, which <see cref="CubinInfo"/> reads). No toolkit header is included anywhere: the
/// only headers are the ones passed in memory (our prelude), so the same source compiles with NVRTC 11.8, 12 and
/// 13 and needs no CUDA include folder on the machine.
/// </para>
/// <para>
/// Cache: <c>&lt;dir&gt;/&lt;sha256&gt;.cubin</c> plus <c>&lt;sha256&gt;.json</c> (log, lowered names), the key
/// hashing the source, every header, the options, the name expressions and the NVRTC version. Files are written
/// to a temporary name and renamed, so concurrent processes never read half a file; the .json is written last and
/// a hit needs both. The directory is <c>TPEFT_KERNEL_CACHE</c>, else <c>$XDG_CACHE_HOME/tpeft/kernels</c>,
/// else <c>~/.cache/tpeft/kernels</c>.
/// </para>
/// </summary>
public sealed partial class KernelCompiler
{
    public const string CacheVariable = "TPEFT_KERNEL_CACHE";
    private const string CacheFormat = "tpeft-kernel-cache-v1";

    /// <param name="cacheDirectory">Where cubins are cached; null disables the cache.</param>
    public KernelCompiler(string? cacheDirectory)
    {
        CacheDirectory = cacheDirectory;
    }

    /// <summary>A compiler using the default cache directory.</summary>
    public static KernelCompiler WithDefaultCache() => new(DefaultCacheDirectory());

    public string? CacheDirectory { get; }

    public static string DefaultCacheDirectory()
    {
        if (Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } dir) return dir;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        var root = xdg is { Length: > 0 } ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "tpeft", "kernels");
    }

    /// <summary>The loaded NVRTC's version. Throws <see cref="CudaLibraryNotFoundException"/> without NVRTC.</summary>
    public static unsafe (int Major, int Minor) NvrtcVersion
    {
        get
        {
            int major, minor;
            var r = Nvrtc.nvrtcVersion(&major, &minor);
            if (r != 0) throw new NvrtcException(nameof(Nvrtc.nvrtcVersion), Nvrtc.ErrorName(r), r, null, "");
            return (major, minor);
        }
    }

    /// <summary>The file NVRTC was loaded from.</summary>
    public static string NvrtcLibraryPath => CudaLibraryResolver.Get(CudaLibraryKind.Nvrtc).Path;

    /// <summary>The options passed to NVRTC for <paramref name="arch"/> (plus any extra ones).</summary>
    public static IReadOnlyList<string> OptionsFor(string arch, IEnumerable<string>? extraOptions = null)
    {
        if (!ArchPattern().IsMatch(arch))
            throw new ArgumentException($"'{arch}' is not a GPU architecture NVRTC can build a cubin for; expected sm_XX (e.g. sm_80, sm_90, sm_90a).", nameof(arch));
        var options = new List<string> { $"--gpu-architecture={arch}", "--std=c++17", "-default-device", "-lineinfo", "--ptxas-options=-v" };
        if (extraOptions is not null) options.AddRange(extraOptions);
        return options;
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for <paramref name="arch"/>. Throws <see cref="NvrtcException"/>
    /// (NVRTC_ERROR_COMPILATION with the log) when the source does not compile.
    /// </summary>
    /// <param name="sourceName">The file name NVRTC reports in diagnostics (e.g. "softmax.cu").</param>
    /// <param name="headers">Headers resolvable by <c>#include "name"</c> (the prelude).</param>
    /// <param name="nameExpressions">Templated kernels whose mangled names are wanted (see <see cref="CompiledKernel.LoweredNames"/>).</param>
    public CompiledKernel Compile(string source, string sourceName, string arch,
        IReadOnlyList<KernelHeader>? headers = null, IReadOnlyList<string>? nameExpressions = null, IEnumerable<string>? extraOptions = null)
    {
        headers ??= [];
        nameExpressions ??= [];
        var options = OptionsFor(arch, extraOptions);
        var version = NvrtcVersion;
        var key = CacheKey(source, sourceName, headers, options, nameExpressions, version);

        if (TryReadCache(key, sourceName, arch, options, version) is { } cached) return cached;

        byte[] cubin;
        string log;
        var lowered = new Dictionary<string, string>(StringComparer.Ordinal);
        using (var program = new NvrtcProgram(source, sourceName, headers))
        {
            foreach (var e in nameExpressions) program.AddNameExpression(e);
            var (status, compileLog) = program.Compile(options);
            log = compileLog;
            if (status != 0)
                throw new NvrtcException(nameof(Nvrtc.nvrtcCompileProgram), Nvrtc.ErrorName(status), status, $"{sourceName} for {arch}", log);
            cubin = program.Cubin();
            foreach (var e in nameExpressions) lowered[e] = program.LoweredName(e);
        }

        var cacheError = WriteCache(key, cubin, log, lowered);
        return new CompiledKernel
        {
            SourceName = sourceName, Arch = arch, Cubin = cubin, Log = log, LoweredNames = lowered, Options = options,
            NvrtcVersion = version, CacheKey = key, FromCache = false, CacheWriteError = cacheError,
        };
    }

    /// <summary>Compiles one file of a <see cref="KernelSourceSet"/>, with the set's headers.</summary>
    public CompiledKernel Compile(KernelSourceSet sources, string fileName, string arch, IReadOnlyList<string>? nameExpressions = null)
    {
        var file = sources.Files.FirstOrDefault(f => f.Name == fileName)
            ?? throw new FileNotFoundException($"Kernel source '{fileName}' is not in {sources.Origin} (it has: {string.Join(", ", sources.Files.Select(f => f.Name))}).", fileName);
        return Compile(file.Text, file.Name, arch, sources.Headers, nameExpressions);
    }

    internal static string CacheKey(string source, string sourceName, IReadOnlyList<KernelHeader> headers, IReadOnlyList<string> options,
        IReadOnlyList<string> nameExpressions, (int Major, int Minor) version)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s)
        {
            h.AppendData(Encoding.UTF8.GetBytes(s));
            h.AppendData([0]);
        }
        Add(CacheFormat);
        Add($"nvrtc {version.Major}.{version.Minor}");
        Add(sourceName);
        Add(source);
        Add($"headers {headers.Count}");
        foreach (var hd in headers) { Add(hd.IncludeName); Add(hd.Text); }
        Add($"options {options.Count}");
        foreach (var o in options) Add(o);
        Add($"names {nameExpressions.Count}");
        foreach (var n in nameExpressions) Add(n);
        return Convert.ToHexStringLower(h.GetHashAndReset());
    }

    private CompiledKernel? TryReadCache(string key, string sourceName, string arch, IReadOnlyList<string> options, (int, int) version)
    {
        if (CacheDirectory is null) return null;
        var cubinPath = Path.Combine(CacheDirectory, key + ".cubin");
        var metaPath = Path.Combine(CacheDirectory, key + ".json");
        try
        {
            if (!File.Exists(metaPath) || !File.Exists(cubinPath)) return null;
            using var doc = JsonDocument.Parse(File.ReadAllBytes(metaPath));
            var root = doc.RootElement;
            if (root.GetProperty("format").GetString() != CacheFormat) return null;
            var log = root.GetProperty("log").GetString() ?? "";
            var lowered = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in root.GetProperty("loweredNames").EnumerateObject()) lowered[p.Name] = p.Value.GetString() ?? "";
            var cubin = File.ReadAllBytes(cubinPath);
            if (cubin.Length == 0 || root.GetProperty("cubinBytes").GetInt64() != cubin.Length) return null;
            return new CompiledKernel
            {
                SourceName = sourceName, Arch = arch, Cubin = cubin, Log = log, LoweredNames = lowered, Options = options,
                NvrtcVersion = version, CacheKey = key, FromCache = true,
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null; // an unreadable or stale entry is recompiled and overwritten
        }
    }

    private string? WriteCache(string key, byte[] cubin, string log, IReadOnlyDictionary<string, string> lowered)
    {
        if (CacheDirectory is null) return null;
        try
        {
            Directory.CreateDirectory(CacheDirectory);
            AtomicWrite.AllBytes(Path.Combine(CacheDirectory, key + ".cubin"), cubin);
            using var ms = new MemoryStream();
            using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteString("format", CacheFormat);
                w.WriteNumber("cubinBytes", cubin.Length);
                w.WriteString("log", log);
                w.WriteStartObject("loweredNames");
                foreach (var (k, v) in lowered) w.WriteString(k, v);
                w.WriteEndObject();
                w.WriteEndObject();
            }
            AtomicWrite.AllBytes(Path.Combine(CacheDirectory, key + ".json"), ms.ToArray());
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"could not write the kernel cache in {CacheDirectory}: {e.Message}";
        }
    }

    [GeneratedRegex(@"^sm_[0-9]{2,3}[af]?$")]
    private static partial Regex ArchPattern();
}
