using TransPeft.Cuda.Compile;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>The cubin reader on its own: malformed input is rejected with a clear message, ptxas logs are parsed.</summary>
public sealed class CubinInfoTests
{
    [Fact]
    public void NonElfBytesAreRejectedNamingTheFile()
    {
        var e = Assert.Throws<FormatException>(() => CubinInfo.Read(new byte[100], what: "cubin of softmax.cu"));
        Assert.Contains("cubin of softmax.cu", e.Message);
        Assert.Contains("not an ELF file", e.Message);
    }

    [Fact]
    public void ASectionTablePastTheEndIsRejected()
    {
        var bytes = new byte[64];
        bytes[0] = 0x7f; bytes[1] = (byte)'E'; bytes[2] = (byte)'L'; bytes[3] = (byte)'F'; bytes[4] = 2; bytes[5] = 1;
        BitConverter.TryWriteBytes(bytes.AsSpan(18), (ushort)190);
        BitConverter.TryWriteBytes(bytes.AsSpan(40), 4096UL); // e_shoff beyond the file
        BitConverter.TryWriteBytes(bytes.AsSpan(58), (ushort)64);
        BitConverter.TryWriteBytes(bytes.AsSpan(60), (ushort)3);
        var e = Assert.Throws<FormatException>(() => CubinInfo.Read(bytes, what: "x.cubin"));
        Assert.Contains("e_shoff", e.Message);
        Assert.Contains("x.cubin", e.Message);
    }

    [Fact]
    public void PtxasVerboseLogIsParsedPerFunction()
    {
        const string log = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'spilly' for 'sm_80'
            ptxas info    : Function properties for spilly
            ptxas         .     392 bytes stack frame, 584 bytes spill stores, 580 bytes spill loads
            ptxas info    : Used 32 registers, 368 bytes cmem[0]
            ptxas info    : Compiling entry function 'tiled' for 'sm_90'
            ptxas info    : Function properties for tiled
            ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 10 registers, 1024 bytes smem, 372 bytes cmem[0]
            """;
        var r = CubinInfo.ParsePtxasLog(log);
        Assert.Equal(new PtxasFunctionReport { Registers = 32, SharedBytes = 0, StackFrameBytes = 392, SpillStoreBytes = 584, SpillLoadBytes = 580 }, r["spilly"]);
        Assert.Equal(new PtxasFunctionReport { Registers = 10, SharedBytes = 1024, StackFrameBytes = 0, SpillStoreBytes = 0, SpillLoadBytes = 0 }, r["tiled"]);
        Assert.Empty(CubinInfo.ParsePtxasLog(null));
    }

    [SkippableFact]
    public void WithoutALogTheCubinAloneStillGivesRegistersSharedMemoryAndFrame()
    {
        CudaTestEnvironment.RequireNvrtc();
        var compiled = new KernelCompiler(null).Compile(TestKernels.Source + TestKernels.LocalArraySource, "both.cu", "sm_80", [TestKernels.Prelude]);
        var withLog = compiled.Kernels().ToDictionary(k => k.Name);
        var cubinOnly = CubinInfo.Read(compiled.Cubin).ToDictionary(k => k.Name);

        Assert.Equal(withLog.Keys.Order(), cubinOnly.Keys.Order());
        foreach (var (name, k) in cubinOnly)
        {
            Assert.Equal(withLog[name].Registers, k.Registers);
            Assert.Equal(withLog[name].FrameBytes, k.FrameBytes);
            Assert.Equal(k.SharedSectionBytes, k.StaticSharedBytes);
            Assert.Null(k.SpillStoreBytes);
        }
        Assert.Equal(1024, cubinOnly["tile_reverse"].StaticSharedBytes);
        Assert.True(cubinOnly["local_array"].FrameBytes >= 1024);
    }
}
