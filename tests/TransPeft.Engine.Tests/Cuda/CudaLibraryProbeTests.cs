using TransPeft.Cuda;
using TransPeft.Cuda.Native;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>The library probe: search order, stub avoidance, and the message a user sees when a library is missing.</summary>
public sealed class CudaLibraryProbeTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("tpeft-probe-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Dir(string name) => Directory.CreateDirectory(Path.Combine(_root, name)).FullName;

    private static CudaLibraryProbe IsolatedProbe(Dictionary<string, string> env) =>
        new(k => env.GetValueOrDefault(k), machineDirectories: false, systemLoader: false);

    [Fact]
    public void MissingLibraryMessageNamesTheLibraryEveryNameAndEveryFolder()
    {
        var a = Dir("override-a");
        var b = Dir("override-b");
        var toolkit = Dir("toolkit");
        Directory.CreateDirectory(Path.Combine(toolkit, "lib64"));
        var ld = Dir("ld");
        var probe = IsolatedProbe(new()
        {
            [CudaLibraryProbe.OverrideVariable] = $"{a}:{b}",
            ["CUDA_PATH"] = toolkit,
            ["LD_LIBRARY_PATH"] = $"{ld}:{Path.Combine(_root, "gone")}",
        });

        var e = Assert.Throws<CudaLibraryNotFoundException>(() => probe.Load(CudaLibraryKind.Cublas));
        Assert.Contains($"folders that do not exist here: {Path.Combine(toolkit, "lib")}", e.Message);
        Assert.Contains(Path.Combine(_root, "gone"), e.Message);

        Assert.Equal(CudaLibraryKind.Cublas, e.Library);
        Assert.Contains("cuBLAS", e.Message);
        foreach (var name in new[] { "libcublas.so.13", "libcublas.so.12", "libcublas.so.11" }) Assert.Contains(name, e.Message);
        foreach (var dir in new[] { a, b, Path.Combine(toolkit, "lib64"), ld }) Assert.Contains(dir, e.Message);
        Assert.Contains(CudaLibraryProbe.OverrideVariable, e.Message); // the hint says how to fix it
        Assert.IsAssignableFrom<DllNotFoundException>(e);
    }

    [Fact]
    public void SearchOrderIsOverrideThenCudaPathThenLdLibraryPath()
    {
        var over = Dir("over");
        var cuda = Dir("cuda");
        var lib64 = Directory.CreateDirectory(Path.Combine(cuda, "lib64")).FullName;
        var targets = Directory.CreateDirectory(Path.Combine(cuda, "targets", "x86_64-linux", "lib")).FullName;
        var ld1 = Dir("ld1");
        var ld2 = Dir("ld2");
        var probe = IsolatedProbe(new()
        {
            [CudaLibraryProbe.OverrideVariable] = over,
            ["CUDA_PATH"] = cuda,
            ["LD_LIBRARY_PATH"] = $"{ld1}::{ld2}:/definitely/not/here",
        });

        var dirs = probe.SearchDirectories();

        var expected = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture == System.Runtime.InteropServices.Architecture.X64
            ? new[] { over, lib64, targets, ld1, ld2 }
            : new[] { over, lib64, ld1, ld2 };
        Assert.Equal(expected, dirs);
    }

    [Fact]
    public void TheWheelsOfThePythonOnPathAreSearchedEvenWithoutAnActivatedVenv()
    {
        // The GPU machine: PyTorch in a venv whose bin/ is on PATH, NVIDIA's CUDA 13 wheels in nvidia/cu13/lib and the
        // older per-component layout in nvidia/cublas/lib.
        var venv = Dir("venv");
        var bin = Dir(Path.Combine("venv", "bin"));
        File.WriteAllText(Path.Combine(bin, "python3"), "");
        var cu13 = Dir(Path.Combine("venv", "lib", "python3.12", "site-packages", "nvidia", "cu13", "lib"));
        var cublas = Dir(Path.Combine("venv", "lib", "python3.12", "site-packages", "nvidia", "cublas", "lib"));
        var other = Dir("other-bin");
        var probe = IsolatedProbe(new() { ["PATH"] = $"{other}:{bin}:/usr/bin" });

        var dirs = probe.SearchDirectories();
        Assert.Contains(cu13, dirs);
        Assert.Contains(cublas, dirs);
        Assert.StartsWith(venv, dirs[0]);
    }

    [Fact]
    public void ToolkitStubFoldersAndLinksIntoThemAreNeverUsed()
    {
        var stubs = Dir(Path.Combine("cuda", "lib64", "stubs"));
        File.WriteAllText(Path.Combine(stubs, "libcuda.so.1"), "not a library");
        var lib = Dir("lib");
        File.CreateSymbolicLink(Path.Combine(lib, "libcuda.so.1"), Path.Combine(stubs, "libcuda.so.1"));
        var probe = IsolatedProbe(new() { [CudaLibraryProbe.OverrideVariable] = $"{stubs}:{lib}" });

        Assert.DoesNotContain(stubs, probe.SearchDirectories());
        var e = Assert.Throws<CudaLibraryNotFoundException>(() => probe.Load(CudaLibraryKind.Driver));
        Assert.Contains("stubs/ copy", e.Message);
    }

    [Fact]
    public void AFileThatExistsButDoesNotLoadIsReportedWithTheLoadersError()
    {
        var dir = Dir("broken");
        File.WriteAllText(Path.Combine(dir, "libnvrtc.so.12"), "garbage, not ELF");
        var probe = IsolatedProbe(new() { [CudaLibraryProbe.OverrideVariable] = dir });

        var e = Assert.Throws<CudaLibraryNotFoundException>(() => probe.Load(CudaLibraryKind.Nvrtc));

        Assert.Contains($"{Path.Combine(dir, "libnvrtc.so.12")}: exists but failed to load", e.Message);
        Assert.Contains("libnvrtc.so.13", e.Message);
        Assert.Contains("libnvrtc.so.11.2", e.Message);
    }

    [SkippableFact]
    public void NvrtcIsLoadedWithItsBuiltinsLibraryFromTheSameFolder()
    {
        var lib = CudaTestEnvironment.RequireLibrary(CudaLibraryKind.Nvrtc);

        Assert.Matches(@"libnvrtc\.so\.(13|12|11\.2)$", lib.Path);
        var builtins = Assert.Single(lib.Preloaded, p => Path.GetFileName(p).StartsWith("libnvrtc-builtins.so.", StringComparison.Ordinal));
        Assert.Equal(Path.GetDirectoryName(lib.Path), Path.GetDirectoryName(builtins));
    }

    [SkippableFact]
    public void NvtxIsFoundThroughTheOverrideFolderAndExportsRangePush()
    {
        CudaTestEnvironment.RequireUnpacked(CudaTestEnvironment.UnpackedNvtxDir, "libnvtoolsext1");
        var probe = IsolatedProbe(new() { [CudaLibraryProbe.OverrideVariable] = CudaTestEnvironment.UnpackedNvtxDir! });

        var lib = probe.Load(CudaLibraryKind.Nvtx);

        Assert.EndsWith("libnvToolsExt.so.1", lib.Path);
        Assert.True(System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib.Handle, "nvtxRangePushA", out _));
        Assert.True(System.Runtime.InteropServices.NativeLibrary.TryGetExport(lib.Handle, "nvtxRangePop", out _));
    }

    [Fact]
    public void NvtxCallsAreHarmlessWhetherOrNotTheLibraryIsThere()
    {
        using (Nvtx.Range("outer"))
        {
            Nvtx.Push(new string('x', 2000)); // longer than the stack buffer: takes the heap path
            Nvtx.Pop();
        }
        Assert.Equal(Nvtx.IsAvailable, Nvtx.LibraryPath is not null);
    }
}
