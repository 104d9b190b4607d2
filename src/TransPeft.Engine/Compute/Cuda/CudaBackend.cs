using TransPeft.Cuda;
using TransPeft.Cuda.Compile;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The CUDA backend of one GPU: the device's primary context and every kernel of kernels/*.cu compiled by NVRTC
/// for the GPU's own architecture (cubins cached on disk, see <see cref="KernelCompiler"/>) and loaded. Models
/// made from it (<see cref="CreateTransformer"/>) each get their own stream and cuBLAS handle and share the
/// kernels. Thread-safe; dispose it after the models.
/// <para>
/// <see cref="TryCreate"/> is the single entry point (the CLI's <c>--device cuda[:N]</c>): it never throws for a
/// missing driver, GPU, NVRTC, cuBLAS or a compile error, and says which one it was.
/// </para>
/// </summary>
public sealed class CudaBackend : IDisposable
{
    /// <summary>The oldest architecture the kernels support (mma.sync bf16, cp.async).</summary>
    public const int MinimumComputeCapability = 80;

    private readonly CudaFunction[] _functions;
    private readonly List<CudaModule> _modules;
    private readonly CudaContext? _context;
    private readonly EmulatedKernelLibrary? _emulated;
    private bool _disposed;

    private CudaBackend(CudaContext context, List<CudaModule> modules, CudaFunction[] functions, string arch, (int, int) nvrtc, int cublasVersion, bool fromCache)
    {
        _context = context;
        _modules = modules;
        _functions = functions;
        Arch = arch;
        NvrtcVersion = nvrtc;
        CublasVersion = cublasVersion;
        KernelsFromCache = fromCache;
    }

    private CudaBackend(EmulatedKernelLibrary emulated)
    {
        _emulated = emulated;
        _modules = [];
        _functions = [];
        Arch = "host";
    }

    /// <summary>The GPU's primary context; an emulated backend has none (check <see cref="IsEmulated"/>).</summary>
    public CudaContext Context => _context ?? throw new InvalidOperationException("the cuda-emulated backend has no GPU context");

    /// <summary>True for <c>cuda-emulated</c> (<see cref="TryCreateEmulated"/>): the real kernels compiled for the host.</summary>
    public bool IsEmulated => _emulated is not null;

    /// <summary>The architecture the kernels were compiled for (the GPU's own, e.g. sm_90).</summary>
    public string Arch { get; }

    public (int Major, int Minor) NvrtcVersion { get; }

    /// <summary>cuBLAS version as major*10000 + minor*100 + patch.</summary>
    public int CublasVersion { get; }

    /// <summary>True when every cubin came from the disk cache (no NVRTC compile this time).</summary>
    public bool KernelsFromCache { get; }

    /// <summary>One line for logs: GPU, memory, architecture, driver, NVRTC and cuBLAS versions.</summary>
    public string Description => _emulated is not null
        ? $"cuda-emulated: the CUDA backend on kernels/*.cu compiled for the host ({_emulated.Path}), cuBLAS GEMMs on the host; slow, for CI and debugging"
        : $"GPU {Context.Ordinal}: {Context.Name} ({Arch}, {Context.TotalMemoryBytes >> 20} MiB, {Context.MultiprocessorCount} SMs; " +
        $"driver CUDA {Context.DriverVersion / 1000}.{Context.DriverVersion % 1000 / 10}, NVRTC {NvrtcVersion.Major}.{NvrtcVersion.Minor}, cuBLAS {CublasVersion / 10000}.{CublasVersion / 100 % 100})";

    /// <summary>
    /// Opens GPU <paramref name="device"/>, compiles (or loads from the cache) and loads every kernel, and checks
    /// cuBLAS. Returns false with <paramref name="reason"/> naming what is missing or broken: no CUDA driver, no
    /// GPU (or fewer GPUs than asked for), a GPU older than sm_80, no NVRTC, a kernel that does not compile or load,
    /// no cuBLAS.
    /// </summary>
    /// <param name="compiler">The kernel compiler (null: the default disk cache, <c>TPEFT_KERNEL_CACHE</c> or ~/.cache/tpeft/kernels).</param>
    /// <remarks>Never throws for the machine's state: an IO or permission error on the kernel cache is a reason too.</remarks>
    public static bool TryCreate(int device, out CudaBackend? backend, out string reason, KernelCompiler? compiler = null)
    {
        backend = null;
        if (device < 0) { reason = $"GPU index {device} is negative"; return false; }

        int count;
        try
        {
            count = CudaContext.DeviceCount;
        }
        catch (CudaLibraryNotFoundException e)
        {
            reason = $"no CUDA driver: {FirstLine(e.Message)}";
            return false;
        }
        catch (CudaException e)
        {
            reason = e.ErrorName == "CUDA_ERROR_NO_DEVICE" ? $"no CUDA GPU ({e.ErrorName} from {e.Call})" : $"the CUDA driver failed to start: {FirstLine(e.Message)}";
            return false;
        }
        catch (DllNotFoundException e)
        {
            reason = $"no CUDA driver: {FirstLine(e.Message)}";
            return false;
        }
        if (count == 0) { reason = "no CUDA GPU (the driver reports 0 devices)"; return false; }
        if (device >= count) { reason = $"GPU {device} was asked for, but the driver reports {count} GPU{(count == 1 ? "" : "s")} (0..{count - 1})"; return false; }

        CudaContext? ctx = null;
        var modules = new List<CudaModule>();
        try
        {
            ctx = CudaContext.Open(device);
            var (major, minor) = ctx.ComputeCapability;
            if (major * 10 + minor < MinimumComputeCapability)
            {
                reason = $"{ctx.Name} is {ctx.Arch}; the kernels need sm_{MinimumComputeCapability} or newer (bf16 tensor cores)";
                ctx.Dispose();
                return false;
            }

            (int, int) nvrtc;
            try { nvrtc = KernelCompiler.NvrtcVersion; }
            catch (CudaLibraryNotFoundException e)
            {
                reason = $"no NVRTC (the runtime compiler the kernels need): {FirstLine(e.Message)}";
                ctx.Dispose();
                return false;
            }

            int cublasVersion;
            try
            {
                using var probe = new CublasHandle(ctx, workspaceBytes: 0);
                cublasVersion = probe.Version;
            }
            catch (CudaLibraryNotFoundException e)
            {
                reason = $"no cuBLAS: {FirstLine(e.Message)}";
                ctx.Dispose();
                return false;
            }

            var sources = KernelSourceSet.Default();
            compiler ??= KernelCompiler.WithDefaultCache();
            var arch = ctx.Arch;
            var files = KernelCatalog.Files.ToArray();
            // One NVRTC program per file, one after another (a one-time cost: later runs load the cached cubins).
            var compiled = new Dictionary<string, CompiledKernel>(StringComparer.Ordinal);
            var failures = new List<string>();
            foreach (var file in files)
            {
                try { compiled[file] = compiler.Compile(sources, file, arch); }
                catch (NvrtcException e) { failures.Add($"{file} does not compile for {arch} with NVRTC {nvrtc.Item1}.{nvrtc.Item2}: {FirstLines(e.Log.Length > 0 ? e.Log : e.Message, 6)}"); }
                catch (FileNotFoundException e) { failures.Add(e.Message); }
            }
            if (failures.Count > 0)
            {
                reason = string.Join("\n", failures);
                ctx.Dispose();
                return false;
            }

            var byFile = new Dictionary<string, CudaModule>(StringComparer.Ordinal);
            foreach (var file in files)
            {
                var module = ctx.LoadModule(compiled[file].Cubin);
                modules.Add(module);
                byFile[file] = module;
            }
            var functions = new CudaFunction[KernelCatalog.All.Count];
            foreach (var k in KernelCatalog.All) functions[(int)k.Id] = byFile[k.File].GetFunction(k.Name);

            backend = new CudaBackend(ctx, modules, functions, arch, nvrtc, cublasVersion, compiled.Values.All(c => c.FromCache));
            reason = "";
            return true;
        }
        catch (Exception e) when (e is CudaException or CudaLibraryNotFoundException or DllNotFoundException or EntryPointNotFoundException
                                       or IOException or UnauthorizedAccessException)
        {
            reason = e switch
            {
                IOException or UnauthorizedAccessException =>
                    $"the kernel cache cannot be used ({FirstLine(e.Message)}); point TPEFT_KERNEL_CACHE at a writable folder",
                CudaException ce when ce.Call == nameof(CuDriver.cuModuleLoadData) =>
                    $"a compiled kernel does not load ({FirstLine(ce.Message)}); when NVRTC is newer than the driver, point TPEFT_CUDA_LIB_DIR at an NVRTC no newer than the driver",
                CudaException ce => $"CUDA failed while setting up GPU {device}: {FirstLine(ce.Message)}",
                _ => $"a CUDA library is missing or too old: {FirstLine(e.Message)}",
            };
            foreach (var m in modules) m.Dispose();
            ctx?.Dispose();
            return false;
        }
    }

    /// <summary>
    /// The CUDA backend without a GPU (<c>--device cuda-emulated</c>): the unchanged backend drives the real
    /// kernels/*.cu from <paramref name="libraryPath"/>, a shared library built from them against the kernel emulator
    /// (TransPeft.KernelEmulation builds and caches it; the engine only loads it). cuBLAS GEMMs run on the host with
    /// cuBLAS's semantics. False with one line when the library is missing, does not load, or lacks a kernel.
    /// </summary>
    public static bool TryCreateEmulated(string libraryPath, out CudaBackend? backend, out string reason)
    {
        backend = null;
        if (!EmulatedKernelLibrary.TryLoad(libraryPath, out var library, out reason)) return false;
        backend = new CudaBackend(library!);
        return true;
    }

    /// <summary><see cref="TryCreate"/> for callers that want an exception carrying the reason.</summary>
    public static CudaBackend Create(int device = 0, KernelCompiler? compiler = null) =>
        TryCreate(device, out var backend, out var reason, compiler) ? backend! : throw new InvalidOperationException($"CUDA backend unavailable: {reason}");

    internal CudaFunction Function(KernelId id)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _functions[(int)id];
    }

    /// <summary>A stream and a cuBLAS handle of its own, sharing this backend's kernels (a real GPU only).</summary>
    internal CudaDevice CreateDevice()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_emulated is not null) throw new InvalidOperationException("the cuda-emulated backend has no GPU device; use OpenDevice");
        return new CudaDevice(this);
    }

    /// <summary>A device of its own for one model: the GPU's (<see cref="CreateDevice"/>) or the host emulation's.
    /// <paramref name="emulatedGraphs"/> = false opens a cuda-emulated device without graph support (a GPU always has it).</summary>
    internal IComputeDevice OpenDevice(bool emulatedGraphs = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _emulated is not null ? new HostEmulatedDevice(_emulated, supportsGraphs: emulatedGraphs) : new CudaDevice(this);
    }

    /// <summary>
    /// Uploads <paramref name="model"/> (and <paramref name="adapter"/>) to the GPU. The model owns its own stream
    /// and arena; dispose it before the backend.
    /// </summary>
    internal CudaTransformer CreateTransformer(TransformerModel model, LoraAdapter? adapter = null, bool fullFineTune = false, CudaTransformerOptions? options = null)
    {
        var device = OpenDevice();
        try { return new CudaTransformer(device, model, adapter, fullFineTune, options, ownsDevice: true); }
        catch { device.Dispose(); throw; }
    }

    /// <summary>A forward-only model for evaluation and generation (no gradient buffers touched).</summary>
    internal CudaTransformer CreateInference(TransformerModel model, LoraAdapter? adapter = null, CudaTransformerOptions? options = null)
    {
        var device = OpenDevice();
        try { return CudaTransformer.ForInference(device, model, adapter, options, ownsDevice: true); }
        catch { device.Dispose(); throw; }
    }

    public override string ToString() => Description;

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();

    private static string FirstLines(string s, int n) => string.Join("\n", s.Split('\n').Take(n)).Trim();

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var m in _modules) m.Dispose();
        _modules.Clear();
        _context?.Dispose();
        _emulated?.Dispose();
    }
}
