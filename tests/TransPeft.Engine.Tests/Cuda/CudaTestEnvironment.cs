using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TransPeft.Cuda;
using TransPeft.Cuda.Native;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>
/// Where the CUDA test prerequisites live, and the skip policy.
/// <list type="bullet">
/// <item>CPU machines: tools/install-cuda-deps.sh installs NVRTC 11.8 and unpacks Debian's libcuda1, libcublas11
/// and libnvtoolsext1 under .cache/. Tests that need them SKIP with the reason when they are absent, except under
/// CI=true, where they FAIL (CI must never skip silently because an install step broke).</item>
/// <item>GPU tests skip when <c>cuInit</c> fails (no device), also in CI (CI has no GPU); with
/// TPEFT_REQUIRE_GPU=1 (set by tools/gpu-check.sh) they fail instead.</item>
/// </list>
/// A module initializer points TPEFT_CUDA_LIB_DIR at the unpacked libcuda1 when the machine has no driver of its
/// own, so the real driver's exports and its no-device error path are exercised through the normal resolver.
/// Tests that may skip are <c>[SkippableFact]</c> (Xunit.SkippableFact): xunit 2.9 itself has no dynamic skip.
/// </summary>
internal static class CudaTestEnvironment
{
    public static readonly string? RepoRoot = FindRepoRoot();

    /// <summary>The folder of the unpacked Debian libcuda.so.1, or null.</summary>
    public static readonly string? UnpackedDriverDir = FindUnpacked("libcuda1", "libcuda.so.1");
    public static readonly string? UnpackedCublasDir = FindUnpacked("libcublas11", "libcublas.so.11");
    public static readonly string? UnpackedNvtxDir = FindUnpacked("libnvtoolsext1", "libnvToolsExt.so.1");

    /// <summary>True when the driver used by the tests is the unpacked one, i.e. this machine has no NVIDIA driver.</summary>
    public static bool UsingUnpackedDriver { get; private set; }

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
    public static bool GpuRequired => Environment.GetEnvironmentVariable("TPEFT_REQUIRE_GPU") == "1";

#pragma warning disable CA2255 // a test assembly's module initializer is exactly the place for test-process setup
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void PointResolverAtUnpackedDriver()
    {
        if (Environment.GetEnvironmentVariable(CudaLibraryProbe.OverrideVariable) is { Length: > 0 }) return;
        if (UnpackedDriverDir is null) return;
        if (NativeLibrary.TryLoad("libcuda.so.1", out var h)) { NativeLibrary.Free(h); return; } // a real driver wins
        Environment.SetEnvironmentVariable(CudaLibraryProbe.OverrideVariable, UnpackedDriverDir);
        UsingUnpackedDriver = true;
    }

    /// <summary>Skips (locally) or fails (CI=true, or TPEFT_REQUIRE_GPU=1 on the GPU machine) when a library the
    /// CUDA layer needs everywhere (NVRTC, the driver) is missing.</summary>
    public static void Require(bool available, string what)
    {
        if (available) return;
        var reason = $"{what} is missing; run tools/install-cuda-deps.sh (CPU machines) or install the CUDA toolkit";
        if (IsCi) Assert.Fail($"{reason} (CI=true: a missing prerequisite fails instead of skipping)");
        if (GpuRequired) Assert.Fail($"{reason} (TPEFT_REQUIRE_GPU=1)");
        throw new SkipException(reason);
    }

    /// <summary>Like <see cref="Require"/> for the Debian packages unpacked under .cache/ by tools/install-cuda-deps.sh:
    /// they exist on development and CI machines only, so elsewhere (the GPU package) the test skips.</summary>
    public static void RequireUnpacked(string? directory, string package)
    {
        if (directory is not null) return;
        var reason = $"{package} is not unpacked under .cache/{package}; run tools/install-cuda-deps.sh";
        if (IsCi) Assert.Fail($"{reason} (CI=true: a missing prerequisite fails instead of skipping)");
        throw new SkipException(reason);
    }

    public static LoadedLibrary RequireLibrary(CudaLibraryKind kind)
    {
        CudaLibraryResolver.TryGet(kind, out var lib, out var failure);
        Require(lib is not null, $"{CudaLibraryProbe.Describe(kind)} ({failure?.Split('\n')[0]})");
        return lib!;
    }

    public static void RequireNvrtc() => RequireLibrary(CudaLibraryKind.Nvrtc);

    /// <summary>A context on GPU 0, or a skip (a failure with TPEFT_REQUIRE_GPU=1) when there is no usable GPU.</summary>
    public static CudaContext OpenGpu()
    {
        try
        {
            return CudaContext.Open();
        }
        catch (Exception e) when (e is CudaException or CudaLibraryNotFoundException)
        {
            var reason = $"no usable GPU: {e.Message.Split('\n')[0]}";
            if (GpuRequired) Assert.Fail($"{reason} (TPEFT_REQUIRE_GPU=1)");
            throw new SkipException(reason);
        }
    }

    /// <summary>The checkout's kernels/ folder. Inside the GPU package there is no checkout (the kernels travel as
    /// resources of TransPeft.Cuda.dll), so tests that read the files skip there; under CI=true they fail.</summary>
    public static string RequireKernelsDirectory()
    {
        if (RepoRoot is { } root && Directory.Exists(Path.Combine(root, "kernels"))) return Path.Combine(root, "kernels");
        var reason = $"no kernels/ folder next to TransPeft.Engine.sln above {AppContext.BaseDirectory} (not a checkout, e.g. the GPU package)";
        if (IsCi) Assert.Fail(reason);
        throw new SkipException(reason);
    }

    private static string? FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "TransPeft.Engine.sln"))) return d.FullName;
        return null;
    }

    private static string? FindUnpacked(string package, string file)
    {
        if (RepoRoot is null) return null;
        var root = Path.Combine(RepoRoot, ".cache", package);
        if (!Directory.Exists(root)) return null;
        return Directory.EnumerateFiles(root, file, SearchOption.AllDirectories).Select(Path.GetDirectoryName).FirstOrDefault();
    }
}
