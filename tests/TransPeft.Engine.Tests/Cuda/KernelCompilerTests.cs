using System.Text.RegularExpressions;
using TransPeft.Cuda;
using TransPeft.Cuda.Compile;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>NVRTC compiles our kernels to cubin for sm_80 and sm_90 without a GPU, and CubinInfo reads what ptxas did.</summary>
public sealed class KernelCompilerTests : IDisposable
{
    private readonly string _cache = Directory.CreateTempSubdirectory("tpeft-kcache-").FullName;

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    [SkippableTheory]
    [InlineData("sm_80")]
    [InlineData("sm_90")]
    public void CompilesToCubinAndReportsRegistersSharedMemoryAndParameters(string arch)
    {
        CudaTestEnvironment.RequireNvrtc();
        var compiled = new KernelCompiler(null).Compile(TestKernels.Source, "test.cu", arch, [TestKernels.Prelude]);

        var elf = ElfFile.Parse(compiled.Cubin, "cubin");
        Assert.Equal(ElfFile.MachineCuda, elf.Machine);
        Assert.Contains($"--gpu-architecture={arch}", compiled.Options);
        Assert.Contains("-lineinfo", compiled.Options);

        var kernels = compiled.Kernels().ToDictionary(k => k.Name);
        Assert.Equal(["scale_add", "tile_reverse"], kernels.Keys.Order());
        var tile = kernels["tile_reverse"];
        Assert.Equal(1024, tile.StaticSharedBytes);
        Assert.True(tile.SharedSectionBytes >= 1024, $".nv.shared section of {tile.SharedSectionBytes} bytes");
        if (arch == "sm_80") Assert.Equal(1024, tile.SharedSectionBytes); // nothing reserved there
        Assert.Equal(256, tile.MaxThreadsPerBlock);
        Assert.Equal(20, tile.ParamBytes);
        Assert.InRange(tile.Registers, 4, 64);
        Assert.Equal(0, tile.FrameBytes);
        Assert.Equal(0, tile.SpillStoreBytes);
        Assert.Equal(0, tile.SpillLoadBytes);
        var scaleAdd = kernels["scale_add"];
        Assert.Equal(0, scaleAdd.StaticSharedBytes);
        Assert.Equal(8 + 8 + 8 + 4 + 4 + 8, scaleAdd.ParamBytes); // float a is padded to 8 before the long long
        Assert.Null(scaleAdd.MaxThreadsPerBlock);

        // Cross-check against ptxas's own words in the log.
        foreach (var k in kernels.Values) Assert.Equal(PtxasRegisters(compiled.Log, k.Name), k.Registers);
    }

    [SkippableFact]
    public void ALocalArrayShowsAsAStackFrameAndRegisterPressureAsSpills()
    {
        CudaTestEnvironment.RequireNvrtc();
        var compiler = new KernelCompiler(null);

        var local = Assert.Single(compiler.Compile(TestKernels.LocalArraySource, "local.cu", "sm_80").Kernels());
        Assert.Equal("local_array", local.Name);
        Assert.True(local.FrameBytes >= 256 * 4, $"stack frame {local.FrameBytes} bytes, expected at least 1024");

        var pressured = compiler.Compile(TestKernels.PressureSource, "pressure.cu", "sm_90", extraOptions: ["--maxrregcount=32"]);
        var p = Assert.Single(pressured.Kernels());
        Assert.InRange(p.Registers, 1, 32);
        Assert.True(p.SpillStoreBytes > 0 && p.SpillLoadBytes > 0, $"spills {p.SpillStoreBytes}/{p.SpillLoadBytes}; log:\n{pressured.Log}");
        Assert.True(p.FrameBytes > 0);
        Assert.Equal(PtxasStackFrame(pressured.Log, "pressure"), p.FrameBytes);
    }

    [SkippableFact]
    public void ACompileErrorRaisesNvrtcErrorCompilationWithTheLog()
    {
        CudaTestEnvironment.RequireNvrtc();
        const string broken = """
            extern "C" __global__ void broken(float* out)
            {
                out[threadIdx.x] = undeclared_thing;
            }
            """;

        var e = Assert.Throws<NvrtcException>(() => new KernelCompiler(_cache).Compile(broken, "broken.cu", "sm_80"));

        Assert.Equal("NVRTC_ERROR_COMPILATION", e.ErrorName);
        Assert.Equal("nvrtcCompileProgram", e.Call);
        Assert.Contains("undeclared_thing", e.Log);
        Assert.Contains("broken.cu", e.Log);
        Assert.Contains(e.Log.Trim(), e.Message);
        Assert.Empty(Directory.GetFiles(_cache)); // failures are not cached
    }

    [SkippableFact]
    public void TheHeaderComesFromMemoryAndNoToolkitIncludeFolderIsUsed()
    {
        CudaTestEnvironment.RequireNvrtc();
        var e = Assert.Throws<NvrtcException>(() => new KernelCompiler(null).Compile(TestKernels.Source, "test.cu", "sm_80"));
        Assert.Contains("prelude.cuh", e.Log);

        // A toolkit header is not there either: kernels must not depend on one.
        var toolkit = Assert.Throws<NvrtcException>(() => new KernelCompiler(null).Compile("#include <cuda_fp16.h>\n", "t.cu", "sm_80"));
        Assert.Equal("NVRTC_ERROR_COMPILATION", toolkit.ErrorName);
    }

    [SkippableFact]
    public void NameExpressionsYieldTheMangledNamesOfTemplateKernels()
    {
        CudaTestEnvironment.RequireNvrtc();
        var compiled = new KernelCompiler(_cache).Compile(TestKernels.TemplateSource, "tmpl.cu", "sm_80", nameExpressions: ["fill<4>", "fill<7>"]);

        var four = compiled.LoweredNames["fill<4>"];
        var seven = compiled.LoweredNames["fill<7>"];
        Assert.StartsWith("_Z", four);
        Assert.NotEqual(four, seven);
        Assert.Equal(new[] { four, seven }.Order(), compiled.Kernels().Select(k => k.Name).Order());

        // The lowered names come back from the cache too.
        var again = new KernelCompiler(_cache).Compile(TestKernels.TemplateSource, "tmpl.cu", "sm_80", nameExpressions: ["fill<4>", "fill<7>"]);
        Assert.True(again.FromCache);
        Assert.Equal(four, again.LoweredNames["fill<4>"]);
    }

    [SkippableFact]
    public void TheCacheReturnsTheSameCubinAndIsKeyedOnEverythingThatChangesIt()
    {
        CudaTestEnvironment.RequireNvrtc();
        var compiler = new KernelCompiler(_cache);

        var first = compiler.Compile(TestKernels.Source, "test.cu", "sm_80", [TestKernels.Prelude]);
        var second = compiler.Compile(TestKernels.Source, "test.cu", "sm_80", [TestKernels.Prelude]);
        Assert.False(first.FromCache);
        Assert.True(second.FromCache);
        Assert.Equal(first.Cubin, second.Cubin);
        Assert.Equal(first.Log, second.Log);
        Assert.Equal(first.CacheKey, second.CacheKey);
        Assert.Null(first.CacheWriteError);
        Assert.Equal([first.CacheKey + ".cubin", first.CacheKey + ".json"], Directory.GetFiles(_cache).Select(Path.GetFileName).Order());
        Assert.Empty(Directory.GetFiles(_cache, "*.tmp", SearchOption.AllDirectories));

        var otherArch = compiler.Compile(TestKernels.Source, "test.cu", "sm_90", [TestKernels.Prelude]);
        var otherPrelude = compiler.Compile(TestKernels.Source, "test.cu", "sm_80", [TestKernels.Prelude with { Text = TestKernels.Prelude.Text + "\n// changed\n" }]);
        var otherOptions = compiler.Compile(TestKernels.Source, "test.cu", "sm_80", [TestKernels.Prelude], extraOptions: ["-DEXTRA=1"]);
        Assert.False(otherArch.FromCache || otherPrelude.FromCache || otherOptions.FromCache);
        Assert.Equal(4, new[] { first, otherArch, otherPrelude, otherOptions }.Select(c => c.CacheKey).Distinct().Count());
    }

    [SkippableFact]
    public void ACorruptCacheEntryIsRecompiledAndRepaired()
    {
        CudaTestEnvironment.RequireNvrtc();
        var compiler = new KernelCompiler(_cache);
        var first = compiler.Compile(TestKernels.LocalArraySource, "local.cu", "sm_80");
        File.WriteAllText(Path.Combine(_cache, first.CacheKey + ".json"), "{ not json");
        File.WriteAllBytes(Path.Combine(_cache, first.CacheKey + ".cubin"), [1, 2, 3]);

        var again = compiler.Compile(TestKernels.LocalArraySource, "local.cu", "sm_80");
        Assert.False(again.FromCache);
        Assert.Equal(first.Cubin, again.Cubin);
        Assert.True(compiler.Compile(TestKernels.LocalArraySource, "local.cu", "sm_80").FromCache);
    }

    [Fact]
    public void ArchitecturesOtherThanSmXxAreRejectedBeforeNvrtcIsLoaded()
    {
        foreach (var bad in new[] { "compute_90", "sm90", "90", "sm_9", "", "sm_90 -G" })
            Assert.Throws<ArgumentException>(() => KernelCompiler.OptionsFor(bad));
        Assert.Equal("--gpu-architecture=sm_90a", KernelCompiler.OptionsFor("sm_90a")[0]);
        Assert.Contains("--std=c++17", KernelCompiler.OptionsFor("sm_80"));
        Assert.Contains("-default-device", KernelCompiler.OptionsFor("sm_80"));
    }

    [Fact]
    public void DefaultCacheDirectoryHonoursTheEnvironmentVariable()
    {
        // Read without mutating the process environment (tests run in parallel): the rule is "variable, else ~/.cache".
        var set = Environment.GetEnvironmentVariable(KernelCompiler.CacheVariable);
        var dir = KernelCompiler.DefaultCacheDirectory();
        if (set is { Length: > 0 }) Assert.Equal(set, dir);
        else Assert.EndsWith(Path.Combine("tpeft", "kernels"), dir);
    }

    private static int PtxasRegisters(string log, string kernel)
    {
        var m = Regex.Match(log, $@"Compiling entry function '{Regex.Escape(kernel)}'[\s\S]*?Used (\d+) registers");
        Assert.True(m.Success, $"no register line for {kernel} in:\n{log}");
        return int.Parse(m.Groups[1].Value);
    }

    private static int PtxasStackFrame(string log, string kernel)
    {
        var m = Regex.Match(log, $@"Function properties for {Regex.Escape(kernel)}\s*\n\D*(\d+) bytes stack frame");
        Assert.True(m.Success, $"no stack frame line for {kernel} in:\n{log}");
        return int.Parse(m.Groups[1].Value);
    }
}
