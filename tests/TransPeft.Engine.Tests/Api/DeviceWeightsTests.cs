using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.Cuda.Backend;
using TransPeft.Engine.Tests.Cuda.Emulation;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Api;

/// <summary>
/// Where a session's weights live (issue #11): a CUDA session over a safetensors folder brings the base to the device
/// in bf16 straight from the memory-mapped files (no fp32 copy on the host), once, shared by the models of every
/// adapter and by LoRA training; F32/F16 files round to bf16 exactly as the eager upload did; bad files fail as
/// before; a CPU session is unchanged.
/// </summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class DeviceWeightsTests
{
    /// <summary>A vocabulary-heavy tiny model: the base (embedding and head) dominates what a model object owns.</summary>
    private static ModelConfig Config() => TinyModels.Config() with { VocabSize = 2048, HiddenSize = 64, HeadDim = 16 };

    private static string SavedModel(SafetensorsDType dtype, int seed = 1, Action<TransformerModel>? edit = null, long? maxShardBytes = null)
    {
        var model = TransformerModel.CreateRandom(Config(), seed, initStd: 0.2);
        edit?.Invoke(model);
        var dir = TpeftProcess.TempDir();
        model.Save(dir, dtype, maxShardBytes);
        return dir;
    }

    private static SessionOptions Emulated()
    {
        // Skips without g++ (fails under CI).
        return new SessionOptions { Device = "cuda-emulated", EmulatorLibrary = HostEmulatedBackend.Library, MaxSequenceLength = 32 };
    }

    private static LoraAdapter Adapter(ModelConfig c, int seed) => TinyModels.TrainedAdapter(c, seed);

    [SkippableFact]
    public void ACudaSessionOverABf16FolderUploadsTheBaseOnceStraightFromTheFileAndSharesIt()
    {
        var dir = SavedModel(SafetensorsDType.BF16);
        var ids = TinyModels.RandomIds(12, Config().VocabSize, 3);
        using var session = InferenceSession.Load(dir, Emulated());
        var shared = session.DeviceBase!;
        var memory = ((HostEmulatedDevice)shared.Device).Memory;
        Assert.Equal(ArenaLayout.AlignUp(shared.Bytes), ArenaLayout.AlignUp(memory.LiveBytes)); // the base is all the session holds so far

        // Each model object (the base's, two adapters', a LoRA trainer) adds its own arena and activations, far less
        // than a base: they read the session's copy. (A model with a copy of its own would add more than a base.)
        long Adds(Action make)
        {
            long before = memory.LiveBytes;
            make();
            long added = memory.LiveBytes - before;
            Assert.True(added < shared.Bytes / 2, $"a model object added {added} bytes for a {shared.Bytes}-byte base");
            return added;
        }
        session.Adapters.Add("a", Adapter(session.Config, 2));
        session.Adapters.Add("b", Adapter(session.Config, 3));
        float[] Logits(string? adapter)
        {
            using var ctx = session.CreateContext(adapter);
            return ctx.Forward(ids).Logits!;
        }
        float[] baseLogits = [], aLogits = [], bLogits = [];
        Adds(() => baseLogits = Logits(null));
        Adds(() => aLogits = Logits("a"));
        Adds(() => bLogits = Logits("b"));
        TrainingContext? trainer = null;
        Adds(() =>
        {
            trainer = session.CreateTrainingContext(Adapter(session.Config, 4));
            Assert.True(double.IsFinite(trainer.Step(BackendParityTests.Batch(session.Config, 2, 8, 5))));
        });
        // The session, the KV decoder's weight store (one for the base and every adapter: adapters live in its device
        // pool) and the LoRA trainer.
        Assert.Equal(3, shared.References);
        trainer!.Dispose();
        Assert.Equal(2, shared.References);

        // No fp32 copy of any base tensor was made on the host.
        var checkpoint = session.Model.Checkpoint!;
        Assert.Equal(0, checkpoint.MaterialisedCount);
        Assert.All(session.Model.Parameters(), p => Assert.False(p.IsMaterialised, p.Name));

        // The eager path (fp32 on the host, then converted) gives the same device weights, hence the same logits.
        using var eager = InferenceSession.FromModel(TransformerModel.Load(dir), Emulated());
        eager.Adapters.Add("a", session.Adapters["a"]);
        using var eagerCtx = eager.CreateContext("a");
        Assert.Equal(aLogits, eagerCtx.Forward(ids).Logits!);
        using var eagerBase = eager.CreateContext();
        Assert.Equal(baseLogits, eagerBase.Forward(ids).Logits!);
        Assert.NotEqual(aLogits, bLogits);

        // Session.Model stays usable: reading a tensor materialises it (and only it) on the host.
        var embed = session.Model.Embed.Data;
        Assert.Equal(TransformerModel.Load(dir).Embed.Data, embed);
        Assert.Equal(1, checkpoint.MaterialisedCount);
    }

    [SkippableFact]
    public void TheMemoryLimitCountsWhatEachDeviceReallyHolds()
    {
        var dir = SavedModel(SafetensorsDType.BF16);
        long fp32 = 4 * Config().ParameterCount(), bf16 = DeviceBaseWeights.BytesFor(TransformerModel.OpenLazy(dir));
        Assert.True(bf16 < fp32 / 2 + 64 * 1024, $"bf16 base {bf16} B, fp32 {fp32} B");
        // Between the two: a GPU session fits (bf16 on the device, nothing on the host), a CPU session does not.
        long between = (bf16 + fp32) / 2;
        using (var gpu = InferenceSession.Load(dir, Emulated() with { MaxMemoryBytes = between })) Assert.Equal(bf16, gpu.DeviceBase!.Bytes);
        var cpu = Assert.Throws<MemoryBudgetException>(() => InferenceSession.Load(dir, new SessionOptions { MaxMemoryBytes = between }));
        Assert.Contains("fp32 parameters", cpu.Message);
        var device = Assert.Throws<MemoryBudgetException>(() => InferenceSession.Load(dir, Emulated() with { MaxMemoryBytes = bf16 - 1 }));
        Assert.Contains("bf16 parameters on the device", device.Message);
    }

    [Fact]
    public void CopyingALazyModelLeavesItLazy()
    {
        var dir = SavedModel(SafetensorsDType.F16);
        var lazy = TransformerModel.OpenLazy(dir);
        var copy = lazy.Clone(); // what full fine-tuning on a GPU session trains
        Assert.Equal(TransformerModel.Load(dir).Parameters().Select(p => p.Data), copy.Parameters().Select(p => p.Data));
        Assert.Equal(0, lazy.Checkpoint!.MaterialisedCount);
        Assert.True(lazy.Checkpoint.IsOpen);
    }

    [Theory]
    [InlineData(SafetensorsDType.F32, false)]
    [InlineData(SafetensorsDType.F16, false)]
    [InlineData(SafetensorsDType.BF16, false)]
    [InlineData(SafetensorsDType.BF16, true)]
    [InlineData(SafetensorsDType.F32, true)]
    public void UploadingFromTheFileGivesTheBitsTheEagerUploadGives(SafetensorsDType dtype, bool sharded)
    {
        // Exact ties between two bf16 values: round to nearest EVEN (1 + 2^-8 rounds down to 1, 1 + 3·2^-8 up to 1 + 2^-6).
        float tieDown = BitConverter.Int32BitsToSingle(0x3F808000), tieUp = BitConverter.Int32BitsToSingle(0x3F818000);
        var dir = SavedModel(dtype, edit: m => { m.Embed.Data[0] = tieDown; m.Embed.Data[1] = tieUp; m.Embed.Data[2] = -tieUp; },
            maxShardBytes: sharded ? 64 * 1024 : null);
        Assert.Equal(sharded, File.Exists(Path.Combine(dir, SafetensorsCheckpoint.IndexFileName)));
        var lazy = TransformerModel.OpenLazy(dir);
        var eager = TransformerModel.Load(dir);

        ushort[] Uploaded(TransformerModel model, int chunk)
        {
            var device = new EmulatedDevice(compute: false);
            var result = new List<ushort>();
            using var upload = new Bf16Upload(device, chunk);
            foreach (var p in model.Parameters())
            {
                var at = device.Allocate(2L * p.Length);
                upload.Upload(at, p);
                var bits = new ushort[p.Length];
                device.Download<ushort>(bits, at);
                result.AddRange(bits);
            }
            return result.ToArray();
        }
        // Chunks of 1000 elements: tensors cross chunk boundaries at odd places.
        var fromFile = Uploaded(lazy, 1000);
        Assert.Equal(0, lazy.Checkpoint!.MaterialisedCount);
        var fromFp32 = Uploaded(eager, Bf16Upload.ChunkElements);
        Assert.Equal(fromFp32, fromFile);
        Assert.Equal(fromFp32, Uploaded(lazy, Bf16Upload.ChunkElements)); // whole tensors: 64K blocks in parallel
        Assert.Equal(0, lazy.Checkpoint.MaterialisedCount);
        if (dtype == SafetensorsDType.F32)
        {
            Assert.Equal([(ushort)0x3F80, (ushort)0x3F82, (ushort)0xBF82], fromFile.Take(3));
        }
    }

    [SkippableTheory]
    [InlineData(SafetensorsDType.BF16)]
    [InlineData(SafetensorsDType.F32)]
    [InlineData(SafetensorsDType.F16)]
    public void ANonFiniteWeightFailsWithTheEagerLoadersMessageOnEveryDevice(SafetensorsDType dtype)
    {
        // Two bad values in the second 64K block of the embedding (converted in parallel): the first one is named.
        var dir = SavedModel(dtype, edit: m =>
        {
            m.Embed.Data[70_000] = float.PositiveInfinity;
            m.Embed.Data[100_000] = float.NaN;
            m.Layers[1].Up.Data[7] = float.NaN;
        });
        var eager = Assert.Throws<NonFiniteValueException>(() => TransformerModel.Load(dir));
        Assert.Contains("model.embed_tokens.weight", eager.Message);
        Assert.Contains("+infinity at element 70000", eager.Message);
        Assert.Equal(eager.Message, Assert.Throws<NonFiniteValueException>(() => InferenceSession.Load(dir)).Message);
        Assert.Equal(eager.Message, Assert.Throws<NonFiniteValueException>(() => InferenceSession.Load(dir, Emulated())).Message);
    }

    [SkippableFact]
    public void BadFilesFailWithTheSameOneLineErrorsOnEveryDevice()
    {

        // A truncated file: refused when opened, before any device work.
        var cut = SavedModel(SafetensorsDType.F16);
        var file = Path.Combine(cut, SafetensorsCheckpoint.SingleFileName);
        using (var fs = new FileStream(file, FileMode.Open)) fs.SetLength(fs.Length - 10);
        var truncated = Assert.Throws<SafetensorsFormatException>(() => TransformerModel.Load(cut)).Message;
        Assert.DoesNotContain('\n', truncated);
        Assert.Equal(truncated, Assert.Throws<SafetensorsFormatException>(() => InferenceSession.Load(cut, Emulated())).Message);
        Assert.Equal(truncated, Assert.Throws<SafetensorsFormatException>(() => InferenceSession.Load(cut)).Message);

        // An integer tensor where a weight belongs.
        var ints = SavedModel(SafetensorsDType.F32);
        RewriteAsInt32(Path.Combine(ints, SafetensorsCheckpoint.SingleFileName), "model.norm.weight");
        var wrongType = Assert.Throws<SafetensorsFormatException>(() => TransformerModel.Load(ints)).Message;
        Assert.Contains("not a floating-point type", wrongType);
        Assert.Equal(wrongType, Assert.Throws<SafetensorsFormatException>(() => InferenceSession.Load(ints, Emulated())).Message);
    }

    [Fact]
    public void ACpuSessionHoldsTheSameFp32WeightsAsAnEagerLoadAndClosesTheFile()
    {
        var dir = SavedModel(SafetensorsDType.BF16);
        using var session = InferenceSession.Load(dir);
        var eager = TransformerModel.Load(dir);
        Assert.All(session.Model.Parameters(), p => Assert.True(p.IsMaterialised, p.Name));
        Assert.Equal(eager.Parameters().Select(p => p.Data), session.Model.Parameters().Select(p => p.Data));
        Assert.False(session.Model.Checkpoint!.IsOpen); // every tensor is in memory: the mapping is gone
        var ids = TinyModels.RandomIds(10, Config().VocabSize, 4);
        using var ctx = session.CreateContext();
        using var fromMemory = InferenceSession.FromModel(eager);
        using var memCtx = fromMemory.CreateContext();
        Assert.Equal(memCtx.Forward(ids).Logits!, ctx.Forward(ids).Logits!);
    }

    /// <summary>Relabels a tensor's dtype from F32 to I32 in place (same byte size, so the header stays valid).</summary>
    private static void RewriteAsInt32(string file, string tensor)
    {
        var bytes = File.ReadAllBytes(file);
        long headerLength = BitConverter.ToInt64(bytes, 0);
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        int at = header.IndexOf($"\"{tensor}\"", StringComparison.Ordinal);
        int dtype = header.IndexOf("\"F32\"", at, StringComparison.Ordinal);
        var patched = header[..dtype] + "\"I32\"" + header[(dtype + 5)..];
        System.Text.Encoding.UTF8.GetBytes(patched).CopyTo(bytes, 8);
        File.WriteAllBytes(file, bytes);
    }
}
