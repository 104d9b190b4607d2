using TransPeft.Cuda;
using TransPeft.Cuda.Compile;
using TransPeft.Cuda.Native;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>
/// The managed wrappers on a real GPU. Each test skips (with the reason) when cuInit fails; tools/gpu-check.sh
/// sets TPEFT_REQUIRE_GPU=1 so that on the GPU machine a missing device fails instead.
/// </summary>
[Collection(GpuCollection.Name)]
public sealed class GpuRuntimeTests
{
    private const uint NaNBits = 0x7FC00000;

    private static CudaModule LoadTestModule(CudaContext ctx)
    {
        var compiled = new KernelCompiler(null).Compile(TestKernels.Source, "test.cu", ctx.Arch, [TestKernels.Prelude]);
        return ctx.LoadModule(compiled.Cubin);
    }

    private static float[] RandomFloats(int n, int seed)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (var i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 4 - 2);
        return a;
    }

    [SkippableFact]
    public void TheContextDescribesTheDevice()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        Assert.True(CudaContext.DeviceCount >= 1);
        Assert.False(string.IsNullOrWhiteSpace(ctx.Name));
        Assert.Matches(@"^sm_\d{2,3}$", ctx.Arch);
        Assert.True(ctx.TotalMemoryBytes > 1L << 30);
        Assert.True(ctx.MultiprocessorCount > 0);
        Assert.True(ctx.MaxSharedMemoryPerBlockOptin >= 48 * 1024);
        var (free, total) = ctx.GetMemoryInfo();
        Assert.InRange(free, 1, total);
        Assert.Equal(ctx.TotalMemoryBytes, total);
    }

    [SkippableFact]
    public void BuffersRoundTripFillAndCopyOnEveryPath()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        var data = RandomFloats(1000, 1);
        using var a = ctx.Allocate<float>(data.Length);
        using var b = ctx.Allocate<float>(data.Length);
        a.CopyFromHost(data);
        Assert.Equal(data, a.ToArray());

        b.Fill32(NaNBits);
        Assert.All(b.ToArray(), v => Assert.True(float.IsNaN(v)));
        b.CopyFrom(a);
        Assert.Equal(data, b.ToArray());
        b.Clear();
        Assert.All(b.ToArray(), v => Assert.Equal(0f, v));

        using var stream = ctx.CreateStream();
        using var pinnedIn = new PinnedHostBuffer<float>(ctx, data.Length);
        using var pinnedOut = new PinnedHostBuffer<float>(ctx, data.Length);
        data.CopyTo(pinnedIn.Span);
        b.Fill32(NaNBits, stream);
        b.CopyFromHostAsync(pinnedIn, stream);
        a.Clear(stream);
        a.CopyFrom(b, stream);
        a.CopyToHostAsync(pinnedOut, stream);
        stream.Synchronize();
        Assert.Equal(data, pinnedOut.Span.ToArray());

        Assert.Throws<ArgumentException>(() => a.CopyFromHost(new float[999]));
        Assert.Equal(a.Ptr.OffsetBytes(40), a.At(10));
    }

    [SkippableFact]
    public void AnotherThreadCanUseTheContextsObjects()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        using var buf = ctx.Allocate<int>(16);
        buf.CopyFromHost(Enumerable.Range(0, 16).ToArray());
        var fromPool = Task.Run(() => buf.ToArray()).GetAwaiter().GetResult();
        var fromThread = new int[16];
        var t = new Thread(() => buf.CopyToHost(fromThread));
        t.Start();
        t.Join();
        Assert.Equal(Enumerable.Range(0, 16), fromPool);
        Assert.Equal(Enumerable.Range(0, 16), fromThread);
    }

    [SkippableFact]
    public void KernelsComputeTheRightValuesAndLaunchingAllocatesNothing()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        using var module = LoadTestModule(ctx);
        var scaleAdd = module.GetFunction("scale_add");
        var tileReverse = module.GetFunction("tile_reverse");
        const int n = 1 << 20;
        var x = RandomFloats(n, 2);
        var y = RandomFloats(n, 3);
        using var dx = ctx.Allocate<float>(n);
        using var dy = ctx.Allocate<float>(n);
        using var dout = ctx.Allocate<float>(n);
        using var stream = ctx.CreateStream();
        dx.CopyFromHost(x);
        dy.CopyFromHost(y);

        dout.Fill32(NaNBits);
        scaleAdd.Launch(Dim3.BlocksFor(n, 256) / 4, 256, 0, stream, dout, dx, dy, 0.5f, (long)n);
        stream.Synchronize();
        var got = dout.ToArray();
        for (var i = 0; i < n; i++)
            Assert.True(MathF.Abs(got[i] - (0.5f * x[i] + y[i])) <= 1e-6f * (1 + MathF.Abs(y[i])), $"out[{i}] = {got[i]}");

        dout.Fill32(NaNBits);
        tileReverse.Launch(Dim3.BlocksFor(n, 256), 256, 0, stream, dout, dx, n);
        stream.Synchronize();
        got = dout.ToArray();
        for (var i = 0; i < n; i++)
        {
            var block = i / 256 * 256;
            Assert.Equal(2f * x[block + 255 - (i - block)], got[i]);
        }

        // Allocation-free launches: warm up, then count managed bytes over many launches.
        tileReverse.Launch(Dim3.BlocksFor(n, 256), 256, 0, stream, dout, dx, n);
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 200; i++) tileReverse.Launch(Dim3.BlocksFor(n, 256), 256, 0, stream, dout, dx, n);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        stream.Synchronize();
        Assert.Equal(0, allocated);
    }

    [SkippableFact]
    public void DriverAttributesAgreeWithTheCubinReport()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        var compiled = new KernelCompiler(null).Compile(TestKernels.Source, "test.cu", ctx.Arch, [TestKernels.Prelude]);
        using var module = ctx.LoadModule(compiled.Cubin);
        foreach (var k in compiled.Kernels())
        {
            var f = module.GetFunction(k.Name);
            Assert.Equal(k.Registers, f.Registers);
            Assert.Contains(f.StaticSharedBytes, new[] { k.StaticSharedBytes, k.SharedSectionBytes });
            Assert.Equal(k.FrameBytes, f.LocalBytes);
            if (k.MaxThreadsPerBlock is { } bound) Assert.Equal(bound, f.MaxThreadsPerBlock);
            Assert.True(f.MaxActiveBlocksPerMultiprocessor(256) >= 1);
        }
    }

    [SkippableFact]
    public void FailuresNameTheCallAndTheError()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        using var module = LoadTestModule(ctx);
        var missing = Assert.Throws<CudaException>(() => module.GetFunction("no_such_kernel"));
        Assert.Equal("cuModuleGetFunction", missing.Call);
        Assert.Equal("CUDA_ERROR_NOT_FOUND", missing.ErrorName);
        Assert.Contains("no_such_kernel", missing.Message);

        using var buf = ctx.Allocate<float>(4096);
        var tooBig = Assert.Throws<CudaException>(() => module.GetFunction("tile_reverse").Launch(1, 2048, 0, null, buf, buf, 4096));
        Assert.Equal("cuLaunchKernel", tooBig.Call);
        Assert.StartsWith("CUDA_ERROR_", tooBig.ErrorName);
        ctx.Synchronize(); // a refused launch does not poison the context

        if (ctx.ComputeCapability.Major != 8)
        {
            // SASS for another major architecture does not load; the message names the device's architecture.
            var sm80 = new KernelCompiler(null).Compile(TestKernels.Source, "test.cu", "sm_80", [TestKernels.Prelude]);
            var wrongArch = Assert.Throws<CudaException>(() => ctx.LoadModule(sm80.Cubin));
            Assert.Equal("cuModuleLoadData", wrongArch.Call);
            Assert.Contains(ctx.Arch, wrongArch.Message);
        }
    }

    [SkippableFact]
    public void EventsTimeGpuWorkAndStreamsOrderThroughEvents()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        using var module = LoadTestModule(ctx);
        const int n = 1 << 22;
        using var a = ctx.Allocate<float>(n);
        using var b = ctx.Allocate<float>(n);
        using var s1 = ctx.CreateStream();
        using var s2 = ctx.CreateStream();
        using var start = ctx.CreateEvent();
        using var end = ctx.CreateEvent();
        a.CopyFromHost(Enumerable.Repeat(1f, n).ToArray());

        start.Record(s1);
        module.GetFunction("scale_add").Launch(256, 256, 0, s1, b, a, a, 2f, (long)n); // b = 3
        end.Record(s1);
        s2.Wait(end);
        module.GetFunction("scale_add").Launch(256, 256, 0, s2, a, b, b, 1f, (long)n); // a = 6, after b is ready
        s2.Synchronize();
        end.Synchronize();

        Assert.True(end.IsComplete);
        var ms = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.InRange(ms, 1e-4f, 10_000f);
        Assert.All(a.ToArray(), v => Assert.Equal(6f, v));
    }

    [SkippableFact]
    public void ACapturedGraphReplaysAndAFailedCaptureLeavesTheStreamUsable()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        using var module = LoadTestModule(ctx);
        var scaleAdd = module.GetFunction("scale_add");
        const int n = 4096;
        using var acc = ctx.Allocate<float>(n);
        using var one = ctx.Allocate<float>(n);
        using var stream = ctx.CreateStream();
        acc.Clear();
        one.CopyFromHost(Enumerable.Repeat(1f, n).ToArray());

        using var graph = CudaGraph.Capture(stream, s => scaleAdd.Launch(16, 256, 0, s, acc, one, acc, 1f, (long)n)); // acc += 1
        using var exec = graph.Instantiate();
        Assert.All(acc.ToArray(), v => Assert.Equal(0f, v)); // capturing ran nothing
        for (var i = 0; i < 3; i++) exec.Launch(stream);
        stream.Synchronize();
        Assert.All(acc.ToArray(), v => Assert.Equal(3f, v));

        Assert.Throws<InvalidOperationException>(() => CudaGraph.Capture(stream, _ => throw new InvalidOperationException("boom")));
        scaleAdd.Launch(16, 256, 0, stream, acc, one, acc, 1f, (long)n);
        stream.Synchronize();
        Assert.All(acc.ToArray(), v => Assert.Equal(4f, v));
    }

    [SkippableFact]
    public void StreamOrderedAllocationsComeFromTheDefaultPool()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        Skip.If(ctx.GetAttribute(CuDeviceAttribute.MemoryPoolsSupported) == 0, "this GPU has no memory pools");
        var pool = ctx.DefaultMemoryPool;
        pool.ReleaseThresholdBytes = 64L << 20;
        Assert.Equal(64L << 20, pool.ReleaseThresholdBytes);
        using var stream = ctx.CreateStream();
        var buf = ctx.AllocateAsync<float>(1 << 20, stream);
        buf.Fill32(BitConverter.SingleToUInt32Bits(7f), stream);
        stream.Synchronize();
        Assert.True(pool.UsedBytes >= 4L << 20);
        Assert.All(buf.ToArray(), v => Assert.Equal(7f, v));
        buf.Dispose();
        stream.Synchronize();
        pool.TrimTo(0);
        Assert.True(pool.ReservedBytes >= 0);
    }

    [SkippableTheory]
    [InlineData(CudaDataType.R32F)]
    [InlineData(CudaDataType.R16BF)]
    public void CublasRowMajorGemmMatchesTheCpuForALinearLayer(CudaDataType outputType)
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        const int BT = 64, C = 96, OC = 80;
        var x = RandomFloats(BT * C, 4).Select(BFloat16.FromSingle).ToArray();
        var w = RandomFloats(OC * C, 5).Select(BFloat16.FromSingle).ToArray();
        using var dx = ctx.Allocate<ushort>(x.Length);
        using var dw = ctx.Allocate<ushort>(w.Length);
        dx.CopyFromHost(x);
        dw.CopyFromHost(w);
        using var stream = ctx.CreateStream();
        using var blas = new CublasHandle(ctx);
        blas.SetStream(stream);
        Assert.True(blas.Version >= 11_0000);

        var expected = new float[BT * OC];
        for (var i = 0; i < BT; i++)
            for (var o = 0; o < OC; o++)
            {
                double s = 0;
                for (var c = 0; c < C; c++) s += BFloat16.ToSingle(x[i * C + c]) * BFloat16.ToSingle(w[o * C + c]);
                expected[i * OC + o] = (float)s;
            }

        float[] got;
        if (outputType == CudaDataType.R32F)
        {
            using var dy = ctx.Allocate<float>(BT * OC);
            dy.Fill32(BitConverter.SingleToUInt32Bits(1f));
            blas.Gemm(false, true, BT, OC, C, 1f, dx.Ptr, C, dw.Ptr, C, 1f, dy.Ptr, OC, cType: CudaDataType.R32F); // beta = 1: accumulate
            stream.Synchronize();
            got = dy.ToArray().Select(v => v - 1f).ToArray();
            for (var i = 0; i < got.Length; i++) Assert.True(MathF.Abs(got[i] - expected[i]) <= 1e-3f * (1 + MathF.Abs(expected[i])), $"y[{i}] = {got[i]}, expected {expected[i]}");
        }
        else
        {
            using var dy = ctx.Allocate<ushort>(BT * OC);
            dy.Fill32(0x7FC07FC0); // NaN poison in both halves
            blas.Gemm(false, true, BT, OC, C, 1f, dx.Ptr, C, dw.Ptr, C, 0f, dy.Ptr, OC);
            stream.Synchronize();
            got = dy.ToArray().Select(BFloat16.ToSingle).ToArray();
            for (var i = 0; i < got.Length; i++) Assert.True(MathF.Abs(got[i] - expected[i]) <= 1e-2f * (1 + MathF.Abs(expected[i])), $"y[{i}] = {got[i]}, expected {expected[i]}");
        }
    }

    [SkippableFact]
    public void CublasStridedBatchedGemmComputesEachBatch()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        const int batches = 3, m = 16, n = 24, k = 32;
        var a = RandomFloats(batches * m * k, 6);
        var b = RandomFloats(batches * k * n, 7);
        using var da = ctx.Allocate<float>(a.Length);
        using var db = ctx.Allocate<float>(b.Length);
        using var dc = ctx.Allocate<float>(batches * m * n);
        da.CopyFromHost(a);
        db.CopyFromHost(b);
        dc.Fill32(NaNBits);
        using var blas = new CublasHandle(ctx);
        using var stream = ctx.CreateStream();
        blas.SetStream(stream);
        blas.GemmStridedBatched(false, false, m, n, k, 1f, da.Ptr, k, m * k, db.Ptr, n, k * n, 0f, dc.Ptr, n, m * n, batches,
            CudaDataType.R32F, CudaDataType.R32F);
        stream.Synchronize();
        var c = dc.ToArray();
        for (var bi = 0; bi < batches; bi++)
            for (var i = 0; i < m; i++)
                for (var j = 0; j < n; j++)
                {
                    double s = 0;
                    for (var p = 0; p < k; p++) s += a[bi * m * k + i * k + p] * b[bi * k * n + p * n + j];
                    Assert.True(Math.Abs(c[bi * m * n + i * n + j] - s) <= 1e-3 * (1 + Math.Abs(s)), $"batch {bi} c[{i},{j}]");
                }
    }

    [SkippableFact]
    public void ProfilerRangesAndNvtxAreAcceptedOnADevice()
    {
        using var ctx = CudaTestEnvironment.OpenGpu();
        ctx.ProfilerStart();
        using (Nvtx.Range("tpeft-test-range")) ctx.Synchronize();
        ctx.ProfilerStop();
    }
}
