using System.Reflection;
using System.Runtime.InteropServices;
using TransPeft.Cuda;
using TransPeft.Cuda.Compile;
using TransPeft.Cuda.Native;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>
/// Every bound export exists in the real libraries, under the right (versioned) name, and failures carry the
/// call and the symbolic error name. On a CPU machine this runs against Debian's driver 535 (unpacked, not
/// installed), NVRTC 11.8 and cuBLAS 11.11's symbol table; on the GPU machine against whatever is installed.
/// </summary>
public sealed class NativeBindingTests
{
    /// <summary>The entry point names declared with [LibraryImport] on a binding class.</summary>
    private static List<string> EntryPoints(Type bindings) =>
        bindings.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
            .Select(m => (Method: m, Attr: m.GetCustomAttribute<LibraryImportAttribute>()))
            .Where(x => x.Attr is not null)
            .Select(x => x.Attr!.EntryPoint ?? x.Method.Name)
            .ToList();

    [Fact]
    public void TheBindingsDeclareWhatTheEngineNeeds()
    {
        var driver = EntryPoints(typeof(CuDriver));
        foreach (var name in new[]
        {
            "cuInit", "cuDriverGetVersion", "cuDeviceGet", "cuDeviceGetCount", "cuDeviceGetName", "cuDeviceGetAttribute", "cuDeviceTotalMem_v2",
            "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2", "cuCtxSetCurrent", "cuCtxGetCurrent", "cuCtxSynchronize",
            "cuMemAlloc_v2", "cuMemFree_v2", "cuMemAllocAsync", "cuMemFreeAsync", "cuDeviceGetDefaultMemPool", "cuMemPoolSetAttribute",
            "cuMemPoolGetAttribute", "cuMemPoolTrimTo", "cuMemHostAlloc", "cuMemFreeHost",
            "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2", "cuMemcpyDtoD_v2", "cuMemcpyHtoDAsync_v2", "cuMemcpyDtoHAsync_v2", "cuMemcpyDtoDAsync_v2",
            "cuMemsetD8_v2", "cuMemsetD32_v2", "cuMemsetD8Async", "cuMemsetD32Async",
            "cuModuleLoadData", "cuModuleUnload", "cuModuleGetFunction", "cuLaunchKernel", "cuFuncGetAttribute", "cuFuncSetAttribute",
            "cuStreamCreate", "cuStreamDestroy_v2", "cuStreamSynchronize", "cuEventCreate", "cuEventRecord", "cuEventSynchronize",
            "cuEventDestroy_v2", "cuEventElapsedTime", "cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags",
            "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy", "cuGetErrorName", "cuGetErrorString", "cuProfilerStart", "cuProfilerStop",
        })
            Assert.Contains(name, driver);
        Assert.Equal(13, EntryPoints(typeof(Nvrtc)).Count);
        Assert.Equal(8, EntryPoints(typeof(Cublas)).Count);
    }

    /// <summary>Unsuffixed exports whose <c>_v2</c> twin is not a widened signature of the same call.</summary>
    private static readonly HashSet<string> s_v2IsADifferentApi = new(StringComparer.Ordinal) { "cuEventElapsedTime", "cuCtxSynchronize" };

    [Fact]
    public void CudaThirteensCtxSynchronizeV2IsNotMistakenForALegacyExport()
    {
        // Driver 580 (CUDA 13) exports cuCtxSynchronize_v2(CUcontext): binding it would need an argument the engine
        // does not pass. The unsuffixed call stays the right one there.
        Assert.Contains("cuCtxSynchronize", EntryPoints(typeof(CuDriver)));
        Assert.DoesNotContain("cuCtxSynchronize_v2", EntryPoints(typeof(CuDriver)));
        Assert.Contains("cuCtxSynchronize", s_v2IsADifferentApi);
    }

    [SkippableFact]
    public void EveryDriverEntryPointIsExportedAndNoneIsTheLegacyVersionOfAVersionedExport()
    {
        var lib = CudaTestEnvironment.RequireLibrary(CudaLibraryKind.Driver);
        var missing = EntryPoints(typeof(CuDriver)).Where(n => !NativeLibrary.TryGetExport(lib.Handle, n, out _)).ToList();
        Assert.True(missing.Count == 0, $"{lib.Path} lacks: {string.Join(", ", missing)}");

        // The unsuffixed names of versioned exports keep their old 32-bit signatures; binding one truncates
        // silently. Exceptions: cuEventElapsedTime is the fallback for drivers without _v2, and CUDA 13's
        // cuCtxSynchronize_v2 is a different API (it takes the context to wait for), not a 64-bit variant.
        var legacy = EntryPoints(typeof(CuDriver))
            .Where(n => !n.EndsWith("_v2", StringComparison.Ordinal) && !s_v2IsADifferentApi.Contains(n))
            .Where(n => NativeLibrary.TryGetExport(lib.Handle, n + "_v2", out _))
            .ToList();
        Assert.True(legacy.Count == 0, $"bound without their _v2 suffix although {lib.Path} exports the _v2 version: {string.Join(", ", legacy)}");
    }

    [SkippableFact]
    public void ElapsedTimeUsesTheV2ExportWhenTheDriverHasItAndFallsBackOtherwise()
    {
        var lib = CudaTestEnvironment.RequireLibrary(CudaLibraryKind.Driver);
        var hasV2 = NativeLibrary.TryGetExport(lib.Handle, "cuEventElapsedTime_v2", out _);
        Assert.Equal(hasV2 ? "cuEventElapsedTime_v2" : "cuEventElapsedTime", CuDriverOptional.EventElapsedTimeEntryPoint);
    }

    [SkippableFact]
    public void CuInitWithoutAGpuRaisesAnExceptionNamingCudaErrorNoDevice()
    {
        CudaTestEnvironment.RequireLibrary(CudaLibraryKind.Driver);
        Skip.IfNot(CudaTestEnvironment.UsingUnpackedDriver, "this machine has its own NVIDIA driver; the no-device path is tested on machines without one");

        var e = Assert.Throws<CudaException>(CudaContext.Initialize);

        Assert.Equal("cuInit", e.Call);
        Assert.Equal("CUDA_ERROR_NO_DEVICE", e.ErrorName);
        Assert.Equal(100, e.Code);
        Assert.StartsWith("cuInit failed: CUDA_ERROR_NO_DEVICE (100)", e.Message);
        // Opening a context goes through cuInit and fails the same way, never with a crash.
        Assert.Equal("CUDA_ERROR_NO_DEVICE", Assert.Throws<CudaException>(() => CudaContext.Open()).ErrorName);
    }

    [SkippableFact]
    public void DriverVersionIsReadWithoutInitialisation()
    {
        CudaTestEnvironment.RequireLibrary(CudaLibraryKind.Driver);
        var v = CudaContext.GetDriverVersion();
        Assert.InRange(v, 11000, 99000); // 1000*major + 10*minor; Debian's 535 says 12020
    }

    [SkippableFact]
    public void ErrorNameTableAgreesWithTheDriversOwnNames()
    {
        CudaTestEnvironment.RequireLibrary(CudaLibraryKind.Driver);
        var disagreements = CudaErrorNames.DriverTableCodes
            .Select(c => (Code: c, Table: CudaErrorNames.DriverFromTable(c), Driver: Check.DriverErrorName(c)))
            .Where(x => x.Table != x.Driver)
            .ToList();
        Assert.True(disagreements.Count == 0, string.Join("; ", disagreements.Select(d => $"{d.Code}: table {d.Table}, driver {d.Driver}")));
        Assert.Equal("CUDA_ERROR_NO_DEVICE", Check.DriverErrorName(100));
        Assert.Equal("CUDA_ERROR_STUB_LIBRARY", Check.DriverErrorName(34));
        Assert.Equal("CUDA_ERROR_4242", Check.DriverErrorName(4242)); // unknown to both: still symbolic and unique
    }

    [Fact]
    public void DriverExceptionsCarryCallNameCodeAndAStubHint()
    {
        var e = Check.DriverException((CuResult)34, "cuMemAlloc_v2");
        Assert.Equal("cuMemAlloc_v2", e.Call);
        Assert.Equal("CUDA_ERROR_STUB_LIBRARY", e.ErrorName);
        Assert.Contains("stub", e.Message);
        var withContext = Check.DriverException((CuResult)500, "cuModuleGetFunction", "kernel 'rmsnorm_forward'");
        Assert.Equal("CUDA_ERROR_NOT_FOUND", withContext.ErrorName);
        Assert.Contains("kernel 'rmsnorm_forward'", withContext.Message);
    }

    [Fact]
    public void CublasStatusesGetTheirSymbolicNames()
    {
        var e = Assert.Throws<CudaException>(() => Check.Cublas(15, "cublasGemmEx"));
        Assert.Equal("CUBLAS_STATUS_NOT_SUPPORTED", e.ErrorName);
        Assert.Equal("cublasGemmEx", e.Call);
        Assert.Equal("CUBLAS_STATUS_INVALID_VALUE", CudaErrorNames.Cublas(7));
        Assert.Equal("CUBLAS_STATUS_EXECUTION_FAILED", CudaErrorNames.Cublas(13));
        Check.Cublas(0, "cublasCreate_v2"); // success does not throw
    }

    [SkippableFact]
    public void EveryNvrtcEntryPointIsExportedAndErrorNamesComeFromNvrtc()
    {
        var lib = CudaTestEnvironment.RequireLibrary(CudaLibraryKind.Nvrtc);
        var missing = EntryPoints(typeof(Nvrtc)).Where(n => !NativeLibrary.TryGetExport(lib.Handle, n, out _)).ToList();
        Assert.True(missing.Count == 0, $"{lib.Path} lacks: {string.Join(", ", missing)}");
        Assert.Equal("NVRTC_ERROR_COMPILATION", Nvrtc.ErrorName(6));
        Assert.Equal("NVRTC_ERROR_INVALID_OPTION", Nvrtc.ErrorName(5));
        var (major, minor) = KernelCompiler.NvrtcVersion;
        Assert.True(major > 11 || (major == 11 && minor >= 2), $"NVRTC {major}.{minor}");
    }

    [SkippableFact]
    public unsafe void CallingIntoAMissingLibraryRaisesTheProbesMessageNotAGenericDllNotFound()
    {
        Skip.If(CudaLibraryResolver.TryGet(CudaLibraryKind.Cublas, out _, out _), "cuBLAS is installed here");

        var e = Assert.Throws<CudaLibraryNotFoundException>(() => Cublas.cublasGetVersion_v2(0, null));

        Assert.Equal(CudaLibraryKind.Cublas, e.Library);
        Assert.Contains("libcublas.so.12", e.Message);
        Assert.Contains("/usr/local/cuda/lib64", e.Message); // looked at, whether or not it exists here
    }

    [SkippableFact]
    public void EveryCublasEntryPointIsExportedByTheLoadedLibrary()
    {
        CudaTestEnvironment.Require(CudaLibraryResolver.TryGet(CudaLibraryKind.Cublas, out var lib, out _) || !CudaTestEnvironment.GpuRequired,
            "cuBLAS (libcublas.so.13/.12/.11)");
        Skip.If(lib is null, "no loadable cuBLAS here (the symbol table of Debian's libcublas11 is checked instead)");
        var missing = EntryPoints(typeof(Cublas)).Where(n => !NativeLibrary.TryGetExport(lib!.Handle, n, out _)).ToList();
        Assert.True(missing.Count == 0, $"{lib!.Path} lacks: {string.Join(", ", missing)}");
    }

    [SkippableFact]
    public void EveryCublasEntryPointIsInTheDynamicSymbolTableOfDebiansLibcublas()
    {
        // Loading libcublas needs its 200 MB companion libcublasLt; reading the export table needs neither.
        CudaTestEnvironment.RequireUnpacked(CudaTestEnvironment.UnpackedCublasDir, "libcublas11");
        var path = Path.Combine(CudaTestEnvironment.UnpackedCublasDir!, "libcublas.so.11");
        var elf = ElfFile.Parse(File.ReadAllBytes(path), path);
        var exported = elf.Symbols(ElfFile.SectionTypeDynsym)
            .Where(s => s.IsDefined && s.Type == ElfSymbol.TypeFunc)
            .Select(s => s.Name)
            .ToHashSet(StringComparer.Ordinal);

        var missing = EntryPoints(typeof(Cublas)).Where(n => !exported.Contains(n)).ToList();
        Assert.True(missing.Count == 0, $"{path} does not export: {string.Join(", ", missing)}");
        Assert.Contains("cublasGemmEx", exported);
        Assert.True(exported.Count > 500, $"only {exported.Count} functions read from .dynsym; the ELF reader is off");
    }
}
