using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cuda.Emulation;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// One device copy of the base (<see cref="DeviceBaseWeights"/>) read by every CUDA model of a session, checked on the
/// C# twin device: models made over it copy no base tensor into their own arenas, read the very same device
/// addresses, and compute exactly what models with their own copy compute; the memory lives until the last user.
/// </summary>
public sealed class SharedBaseTests
{
    [Fact]
    public void AdapterModelsAndALoraTrainerReadTheOneSharedBaseAndComputeTheSame()
    {
        var c = BackendParityTests.Config("qwen2");
        var model = BackendParityTests.Model(c, 1);
        var a1 = BackendParityTests.Adapter(c, 2);
        var a2 = BackendParityTests.Adapter(c, 3);
        var a3 = BackendParityTests.Adapter(c, 4);
        var device = new EmulatedDevice();
        var shared = DeviceBaseWeights.Upload(device, model, ownsDevice: false);
        Assert.Equal(1, device.AllocationCount);

        using var i1 = CudaTransformer.ForInference(device, model, a1, sharedBase: shared);
        using var i2 = CudaTransformer.ForInference(device, model, a2, sharedBase: shared);
        using var baseOnly = CudaTransformer.ForInference(device, model, sharedBase: shared);
        using var trainer = new CudaTransformer(device, model, a3, sharedBase: shared);
        foreach (var m in new[] { i1, i2, baseOnly, trainer })
        {
            // Each model's own arena holds its adapter, trainable blocks and RoPE table: no base tensor.
            Assert.All(model.Parameters(), p => Assert.Equal(shared.Pointer(Region(shared, p)), m.Weight(p)));
            Assert.DoesNotContain(m.ParameterLayout.Arena.Regions, r => model.Parameters().Any(p => r.Name == p.Name + ".bf16"));
        }

        // The same numbers as models that upload a copy of their own (the bf16 values are the same, so bit for bit).
        var own = new EmulatedDevice();
        using var o1 = CudaTransformer.ForInference(own, model, a1);
        using var oTrainer = new CudaTransformer(own, model, BackendParityTests.Adapter(c, 4));
        // A model with a copy of its own holds exactly one base more than the one that shares it.
        Assert.Equal(ArenaLayout.AlignUp(shared.Bytes), o1.ParameterLayout.Arena.TotalBytes - i1.ParameterLayout.Arena.TotalBytes);
        var ids = TinyIds(c, 2 * 7);
        Assert.Equal(o1.ForwardLogits(ids, 2, 7), i1.ForwardLogits(ids, 2, 7));
        var batch = BackendParityTests.Batch(c, 2, 7, 5);
        var ctx = BackendParityTests.PhiloxContext(c.NumLayers, 0.2, 0.5);
        trainer.ZeroGrad();
        oTrainer.ZeroGrad();
        Assert.Equal(oTrainer.ForwardBackward(batch, 0.5f, ctx), trainer.ForwardBackward(batch, 0.5f, ctx));
        trainer.CopyGradientsToHost();
        oTrainer.CopyGradientsToHost();
        Assert.Equal(oTrainer.TrainableParameters.Select(p => p.Grad!), trainer.TrainableParameters.Select(p => p.Grad!));
    }

    [Fact]
    public void FullFineTuningTrainsItsOwnCopyEvenWhenGivenTheSharedBase()
    {
        var c = BackendParityTests.Config();
        var model = BackendParityTests.Model(c, 1);
        var device = new EmulatedDevice(compute: false);
        var shared = DeviceBaseWeights.Upload(device, model, ownsDevice: false);
        using var full = new CudaTransformer(device, model, fullFineTune: true, sharedBase: shared);
        Assert.All(full.ParameterLayout.Parameters, d => Assert.False(d.Shared));
        Assert.Equal(model.Parameters().Count(), full.ParameterLayout.Trainable.Length);
        shared.Release();
    }

    [Fact]
    public void TheSharedBaseIsFreedWhenItsLastUserIsDisposedInAnyOrder()
    {
        var c = BackendParityTests.Config();
        var model = BackendParityTests.Model(c, 1);
        var device = new NullDevice();
        var shared = DeviceBaseWeights.Upload(device, model, ownsDevice: false);
        var m1 = CudaTransformer.ForInference(device, model, sharedBase: shared);
        var m2 = new CudaTransformer(device, model, BackendParityTests.Adapter(c, 2), sharedBase: shared);
        shared.Release(); // the session goes first: the models still read the base
        Assert.True(shared.IsAlive);
        m1.Dispose();
        Assert.True(shared.IsAlive);
        m2.Dispose();
        Assert.False(shared.IsAlive);
        Assert.Throws<ObjectDisposedException>(() => CudaTransformer.ForInference(device, model, sharedBase: shared));
        Assert.Equal(0, device.Live);
        // A base belongs to one model's weights: another model's parameters are not in it.
        var other = DeviceBaseWeights.Upload(device, model, ownsDevice: false);
        Assert.Throws<ArgumentException>(() => CudaTransformer.ForInference(device, BackendParityTests.Model(c, 2), sharedBase: other));
        other.Release();
        Assert.Equal(0, device.Live);
    }

    [SkippableFact]
    public void OnAGpuModelsOnOtherStreamsReadTheBaseUploadedFromTheFileThroughPinnedStaging()
    {
        var backend = GpuBackend.Require();
        var c = BackendParityTests.Config("llama", hidden: 64, heads: 4, kvHeads: 2, headDim: 64, inter: 96);
        var dir = Support.TpeftProcess.TempDir();
        BackendParityTests.Model(c, 1).Save(dir, SafetensorsDType.F32); // F32: converted through the page-locked staging buffer
        var lazy = TransformerModel.OpenLazy(dir);
        var adapter = BackendParityTests.Adapter(c, 2);
        var shared = backend.UploadBase(lazy);
        var ids = TinyIds(c, 2 * 7);
        float[] sharedLogits;
        using (var m = backend.CreateInference(lazy, adapter, sharedBase: shared)) sharedLogits = m.ForwardLogits(ids, 2, 7);
        using var own = backend.CreateInference(TransformerModel.Load(dir), adapter);
        Assert.Equal(own.ForwardLogits(ids, 2, 7), sharedLogits);
        Assert.Equal(0, lazy.Checkpoint!.MaterialisedCount);
        shared.Release();
        Assert.False(shared.IsAlive);
    }

    private static ArenaRegion Region(DeviceBaseWeights shared, Parameter p) =>
        shared.TryGetRegion(p, out var r) ? r : throw new Xunit.Sdk.XunitException($"'{p.Name}' is not in the shared base");

    private static int[] TinyIds(ModelConfig c, int n) => Enumerable.Range(0, n).Select(i => (i * 7 + 3) % c.VocabSize).ToArray();
}
