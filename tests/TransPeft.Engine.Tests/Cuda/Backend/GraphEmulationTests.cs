using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;
using TransPeft.Engine.Tests.Cuda.Emulation;
using static TransPeft.Engine.Compute.Cuda.KernelArgument;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// Graph capture on the emulated devices behaves as the driver's does, so "keyed by shape only" can be tested without
/// a GPU: capture runs nothing; a replay re-issues the recorded launches, GEMMs, memsets and asynchronous copies with
/// the argument values of capture (a later change to the caller's argument array does not reach the graph), while an
/// asynchronous copy reads its host bytes again at every replay; allocating, freeing or synchronizing during capture
/// fails and invalidates the capture; a replay touching a freed buffer fails.
/// </summary>
public abstract unsafe class GraphEmulationTests
{
    internal abstract IComputeDevice NewDevice(bool graphs = true);

    /// <summary>False on a GPU: the driver's own error codes and messages are not what the emulation's rules pin.</summary>
    protected virtual bool Emulated => true;

    [SkippableFact]
    public void AReplayRerunsTheCapturedWorkWithTheArgumentsOfCaptureAndTheHostBytesOfReplay()
    {
        using var device = NewDevice();
        Assert.True(device.SupportsGraphs);
        const int n = 16;
        var host = device.AllocateHost(n * 4);
        var hostValues = new Span<float>((void*)host, n);
        DevicePtr src = device.Allocate(n * 4), dst = device.Allocate(n * 2), c = device.Allocate(2 * 2 * 4);
        var shape = new CudaOps(device).Plan.GridStride((n + 7) / 8);
        KernelArgument[] args = [dst, src, I64(n)];
        device.Upload<ushort>(dst, Enumerable.Repeat((ushort)0xFFFF, n).ToArray()); // NaN: what nothing has written yet

        device.BeginCapture();
        device.UploadAsync(src, host, n * 4);
        device.Launch(KernelId.CastF32ToBf16, shape, args);
        device.Zero(c, 2 * 2 * 4);
        // C[2,2] (fp32) += bf16 dst viewed as x[2,8] · W[2,8]ᵀ with W = the same rows: row dot products.
        device.Gemm(false, true, 2, 2, 8, 1f, dst, 8, dst, 8, 1f, c, 2, CudaDataType.R16BF, CudaDataType.R32F);
        using var graph = device.EndCapture();
        args[2] = I64(n / 2); // the caller's array changes after capture: the recorded launch keeps n

        var bits = new ushort[n];
        device.Download<ushort>(bits, dst);
        Assert.All(bits, b => Assert.Equal(0xFFFF, b)); // capture ran nothing: the poison is still there
        var sums = new float[4];
        for (int replay = 1; replay <= 3; replay++)
        {
            for (int i = 0; i < n; i++) hostValues[i] = replay * (i % 8 + 1) * 0.25f;
            graph.Launch();
            device.Download<ushort>(bits, dst);
            for (int i = 0; i < n; i++) Assert.Equal(BFloat16.FromSingle(hostValues[i]), bits[i]);
            device.Download<float>(sums, c);
            float want = 0;
            for (int i = 0; i < 8; i++) want += hostValues[i] * hostValues[i];
            Assert.Equal(want, sums[0]); // the memset ran before the GEMM's beta = 1 accumulation on every replay
        }
        device.FreeHost(host);
    }

    [SkippableFact]
    public void AllocatingOrSynchronizingDuringCaptureFailsAndInvalidatesTheCapture()
    {
        using var device = NewDevice();
        Skip.IfNot(Emulated, "the driver reports these with its own error codes");
        var buffer = device.Allocate(256);
        var host = device.AllocateHost(256);
        var attempts = new (string Name, Action Call)[]
        {
            ("cuMemAlloc", () => device.Allocate(64)),
            ("cuMemFree", () => device.Free(buffer)),
            ("cuMemHostAlloc", () => device.AllocateHost(64)),
            ("synchronous host-to-device copy", () => device.Upload<float>(buffer, [1f])),
            ("synchronous device-to-host copy", () => device.Download<float>(new float[1], buffer)),
            ("cuStreamSynchronize", device.Synchronize),
        };
        foreach (var (name, call) in attempts)
        {
            device.BeginCapture();
            device.Zero(buffer, 256);
            var e = Assert.Throws<InvalidOperationException>(call);
            Assert.Contains(name, e.Message);
            Assert.Contains("capturing", e.Message);
            var end = Assert.Throws<InvalidOperationException>(device.EndCapture);
            Assert.Contains("invalidated by", end.Message);
            Assert.Contains(name, end.Message);
        }
        // A second BeginCapture fails; an aborted capture leaves the stream usable for plain work.
        device.BeginCapture();
        Assert.Throws<InvalidOperationException>(device.BeginCapture);
        device.AbortCapture();
        device.Upload<float>(buffer, [2f]);
        var back = new float[1];
        device.Download<float>(back, buffer);
        Assert.Equal(2f, back[0]);
        Assert.Throws<InvalidOperationException>(device.EndCapture); // not capturing
        device.FreeHost(host);
    }

    [SkippableFact]
    public void AReplayThatTouchesAFreedBufferFailsAndAGraphlessDeviceRefusesCapture()
    {
        using var device = NewDevice();
        Skip.IfNot(Emulated, "on a GPU a replay on freed memory is undefined behaviour, not an error");
        var buffer = device.Allocate(256);
        device.BeginCapture();
        device.Zero(buffer, 256);
        using var graph = device.EndCapture();
        graph.Launch();
        device.Free(buffer);
        Assert.Throws<InvalidOperationException>(graph.Launch);

        using var plain = NewDevice(graphs: false);
        Assert.False(plain.SupportsGraphs);
        Assert.Throws<NotSupportedException>(plain.BeginCapture);
        // An asynchronous copy must come from the device's host memory.
        var target = plain.Allocate(16);
        var managed = (nint)System.Runtime.InteropServices.NativeMemory.Alloc(16);
        try { Assert.Throws<ArgumentException>(() => plain.UploadAsync(target, managed, 16)); }
        finally { System.Runtime.InteropServices.NativeMemory.Free((void*)managed); }
    }
}

/// <summary>The same replay semantics on the GPU (CudaDevice: pinned host memory, cuMemcpyHtoDAsync, a captured
/// cuBLAS call): what the emulation claims, checked against the driver.</summary>
[Collection(GpuCollection.Name)]
public sealed class GpuGraphEmulationTests : GraphEmulationTests
{
    internal override IComputeDevice NewDevice(bool graphs = true) => GpuBackend.NewDevice();
    protected override bool Emulated => false;
}

/// <summary>Graph capture on the C# twin device.</summary>
public sealed class EmulatedGraphEmulationTests : GraphEmulationTests
{
    internal override IComputeDevice NewDevice(bool graphs = true) => new EmulatedDevice(graphs: graphs);
}

/// <summary>Graph capture on cuda-emulated (the real kernels compiled for the host).</summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class HostEmulatedGraphEmulationTests : GraphEmulationTests
{
    internal override IComputeDevice NewDevice(bool graphs = true) => HostEmulatedBackend.NewDevice(graphs);
}

/// <summary>The session API's <see cref="TrainingStepOptions.CudaGraphs"/> on cuda-emulated: a training context
/// that replays captured graphs takes the same steps, to the bit, as one that launches every kernel.</summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class HostEmulatedSessionGraphTests
{
    [SkippableFact]
    public void ATrainingContextWithCudaGraphsTakesTheSameStepsToTheBit()
    {
        var backend = HostEmulatedBackend.Require();
        var model = TinyModels.Model(5);
        using var session = InferenceSession.FromModel(model, backend);
        var (plainLosses, plainWeights) = Api.SessionTests.ThreeLoraSteps(session, new TrainingStepOptions { LearningRate = 1e-2, Seed = 4, CudaGraphs = false });
        var (graphLosses, graphWeights) = Api.SessionTests.ThreeLoraSteps(session, new TrainingStepOptions { LearningRate = 1e-2, Seed = 4, CudaGraphs = true });
        Assert.Equal(plainLosses, graphLosses);
        Assert.Equal(plainWeights, graphWeights);
    }
}
