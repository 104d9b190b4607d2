using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The session API on cuda-emulated (the real kernels compiled for the host): contexts and the batched generator
/// share the session's KV-cached decoder; a request batched with others gets exactly the tokens it gets alone on
/// the same device; logits and hidden states are within bf16 of the CPU session's; a same-shape replacement is a
/// hot swap of the device copy; every KV slot goes back when contexts and requests end.
/// </summary>
[Collection(HostEmulatedCollection.Name)]
public sealed class CudaSessionTests
{
    private static InferenceSession Cuda(Model.TransformerModel model) =>
        InferenceSession.FromModel(model, HostEmulatedBackend.Require(), new SessionOptions { MaxSequenceLength = 32, MaxBatchSize = 8, MaxResidentAdapters = 2 });

    [SkippableFact]
    public async Task BatchedMixedAdapterRequestsGetTheTokensOfTheSameRequestsAloneAndGiveBackTheirSlots()
    {
        var model = TinyModels.Model(7);
        using var session = Cuda(model);
        session.Adapters.Add("a0", TinyModels.TrainedAdapter(model.Config, 21));
        session.Adapters.Add("a1", TinyModels.TrainedAdapter(model.Config, 22));
        var jobs = Enumerable.Range(0, 5).Select(i => (
            Adapter: (i % 3) switch { 0 => (string?)null, 1 => "a0", _ => "a1" },
            Prompt: TinyModels.RandomIds(2 + i, model.Config.VocabSize, 40 + i),
            Options: i == 3
                ? new GenerationOptions { MaxNewTokens = 4, Temperature = 0.8, TopP = 0.9, Seed = i, EosTokenIds = [] }
                : new GenerationOptions { MaxNewTokens = 3 + i % 3, Greedy = true, EosTokenIds = [] })).ToArray();

        var alone = new IReadOnlyList<int>[jobs.Length];
        using (var ctx = session.CreateContext())
            for (int i = 0; i < jobs.Length; i++)
            {
                ctx.UseAdapter(jobs[i].Adapter);
                alone[i] = ctx.Generate(jobs[i].Prompt, jobs[i].Options).TokenIds;
            }

        var gen = new BatchedGenerator(session, new BatcherOptions { MaxBatchRequests = 4, MaxBatchTokens = 12 });
        var loop = Task.Run(() => gen.RunAsync());
        var requests = jobs.Select(j => Inference.BatchedGeneratorTests.Collect(gen.Submit(j.Prompt, j.Adapter, j.Options))).ToList();
        var batched = await Task.WhenAll(requests).WaitAsync(TimeSpan.FromMinutes(5));
        gen.Batcher.Close();
        await loop.WaitAsync(TimeSpan.FromMinutes(1));
        for (int i = 0; i < jobs.Length; i++) Assert.Equal(alone[i], batched[i]);

        var decoder = session.CudaDecoder!;
        for (int i = 0; i < 100 && decoder.SlotsInUse > 0; i++) await Task.Delay(10); // request caches go back as their completions run
        Assert.Equal(0, decoder.SlotsInUse);
        Assert.Throws<ArgumentException>(() => new BatchedGenerator(session, new BatcherOptions { MaxBatchRequests = 9, MaxBatchTokens = 20 }));
    }

    [SkippableFact]
    public void Float32AdaptersAreRefusedOnCudaWhoseAdapterPoolHoldsBf16()
    {
        var model = TinyModels.Model(10);
        var e = Assert.Throws<NotSupportedException>(() => InferenceSession.FromModel(model, HostEmulatedBackend.Require(),
            new SessionOptions { MaxSequenceLength = 32, AdapterPrecision = AdapterPrecision.Float32 }));
        Assert.Contains("SessionOptions.AdapterPrecision Float32: the CUDA adapter pool holds bf16", e.Message);
    }

    [SkippableFact]
    public void SessionOptionCudaGraphsChoosesReplayedOrPlainDecodeStepsWithTheSameTokens()
    {
        var model = TinyModels.Model(10);
        var prompt = TinyModels.RandomIds(5, model.Config.VocabSize, 61);
        var greedy = new GenerationOptions { MaxNewTokens = 6, Greedy = true, EosTokenIds = [] };
        (IReadOnlyList<int> Tokens, int Captures, int Launches) Run(bool graphs)
        {
            using var session = InferenceSession.FromModel(model, HostEmulatedBackend.Require(),
                new SessionOptions { MaxSequenceLength = 32, MaxBatchSize = 2, CudaGraphs = graphs });
            using var ctx = session.CreateContext();
            var tokens = ctx.Generate(prompt, greedy).TokenIds;
            return (tokens, session.CudaDecoder!.GraphCaptures, session.CudaDecoder.GraphLaunches);
        }
        var replayed = Run(graphs: true);
        var plain = Run(graphs: false);
        Assert.Equal(replayed.Tokens, plain.Tokens);
        Assert.Equal(1, replayed.Captures);               // one decode batch size: captured once ...
        Assert.True(replayed.Launches >= greedy.MaxNewTokens - 2, $"{replayed.Launches} graph launches"); // ... replayed per token
        Assert.Equal((0, 0), (plain.Captures, plain.Launches));
    }

    [SkippableFact]
    public void ForwardLogitsAndHiddenStatesAreWithinBf16OfTheCpuSession()
    {
        var model = TinyModels.Model(8);
        var adapter = TinyModels.TrainedAdapter(model.Config, 23);
        using var cpu = InferenceSession.FromModel(model, new SessionOptions { MaxSequenceLength = 32 });
        using var gpu = Cuda(model);
        cpu.Adapters.Add("a", adapter);
        gpu.Adapters.Add("a", adapter);
        var ids = TinyModels.RandomIds(12, model.Config.VocabSize, 5);
        foreach (var name in new[] { null, "a" })
        {
            using var c1 = cpu.CreateContext(name);
            using var c2 = gpu.CreateContext(name);
            var want = c1.Forward(ids, 2, ForwardOutputs.Logits | ForwardOutputs.HiddenStates);
            var got = c2.Forward(ids, 2, ForwardOutputs.Logits | ForwardOutputs.HiddenStates);
            ParityCheck.Logits($"{name ?? "base"} logits", want.Logits, got.Logits, ParityTolerance.Bf16);
            ParityCheck.Logits($"{name ?? "base"} hidden states", want.HiddenStates, got.HiddenStates, ParityTolerance.Bf16);
            var s1 = c1.Score(ids);
            var s2 = c2.Score(ids);
            Assert.True(Math.Abs(s1.Loss - s2.Loss) <= 1e-2 * Math.Abs(s1.Loss), $"{name ?? "base"}: score loss cpu {s1.Loss}, cuda {s2.Loss}");
        }
    }

    [SkippableFact]
    public void ASameShapeReplacementHotSwapsTheDeviceCopy()
    {
        var model = TinyModels.Model(9);
        using var dir = new TempDir();
        var (firstDir, secondDir) = TinyModels.SaveTwoAdapters(model.Config, dir.Path);
        var prompt = TinyModels.RandomIds(4, model.Config.VocabSize, 6);
        var greedy = new GenerationOptions { MaxNewTokens = 5, Greedy = true, EosTokenIds = [] };

        using var fresh = Cuda(model);
        fresh.Adapters.Load("t", secondDir);
        IReadOnlyList<int> want;
        using (var ctx = fresh.CreateContext("t")) want = ctx.Generate(prompt, greedy).TokenIds;

        using var session = Cuda(model);
        var load = session.Adapters.Load("t", firstDir, replace: false);
        Assert.NotNull(load.DeviceUpload); // packed and copied into a device pool slot at load time, and timed
        Assert.True(load.Elapsed >= load.DeviceUpload);
        using var context = session.CreateContext("t");
        var before = context.Generate(prompt, greedy).TokenIds;
        int uploads = session.CudaDecoder!.Pool.Uploads;
        var swap = session.Adapters.Load("t", secondDir, replace: true);
        Assert.True(swap.InPlace);
        Assert.NotNull(swap.DeviceUpload);
        var after = context.Generate(prompt, greedy).TokenIds;
        Assert.Equal(want, after);
        Assert.Equal(uploads + 1, session.CudaDecoder.Pool.Uploads);
        Assert.NotEqual(before, after);
    }
}
