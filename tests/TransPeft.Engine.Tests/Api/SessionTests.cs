using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;
using TempDir = TransPeft.Engine.Tests.IO.TempDir;

namespace TransPeft.Engine.Tests.Api;

/// <summary>The public session API as a host uses it: one shared model, per-request contexts, adapters by name.</summary>
public sealed class SessionTests
{
    private static InferenceSession Session(out LoraAdapter a, out LoraAdapter b, int threads = 1)
    {
        var model = TinyModels.Model(5);
        var session = InferenceSession.FromModel(model, new SessionOptions { Threads = threads });
        a = TinyModels.TrainedAdapter(model.Config, seed: 11);
        b = TinyModels.TrainedAdapter(model.Config, seed: 12);
        session.Adapters.Add("a", a);
        session.Adapters.Add("b", b);
        return session;
    }

    private static (int[] Prompt, string? Adapter, GenerationOptions Options)[] Requests(int vocab) =>
        Enumerable.Range(0, 12).Select(i => (
            TinyModels.RandomIds(3 + i % 5, vocab, 100 + i),
            (i % 3) switch { 0 => (string?)null, 1 => "a", _ => "b" },
            new GenerationOptions { MaxNewTokens = 10 + i % 4, Greedy = i % 2 == 0, Temperature = 0.9, TopK = 20, TopP = 0.95, Seed = i, EosTokenIds = [] }))
        .ToArray();

    [Fact]
    public void Threads_generating_concurrently_on_one_model_get_the_tokens_of_the_same_requests_run_one_after_another()
    {
        using var session = Session(out _, out _);
        var requests = Requests(session.Config.VocabSize);
        IReadOnlyList<int>[] sequential;
        using (var ctx = session.CreateContext())
            sequential = requests.Select(r => { ctx.UseAdapter(r.Adapter); return ctx.Generate(r.Prompt, r.Options).TokenIds; }).ToArray();
        Assert.Contains(sequential, s => s.Count > 0);
        // The base and each adapter give different continuations, so a mixed-up adapter would show.
        Assert.NotEqual(sequential[0], session.CreateContext("a").Generate(requests[0].Prompt, requests[0].Options).TokenIds);

        for (int round = 0; round < 3; round++)
        {
            var concurrent = new IReadOnlyList<int>[requests.Length];
            using var start = new Barrier(4);
            var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
            {
                using var ctx = session.CreateContext();
                start.SignalAndWait();
                for (int i = t; i < requests.Length; i += 4)
                {
                    ctx.UseAdapter(requests[i].Adapter);
                    concurrent[i] = ctx.Generate(requests[i].Prompt, requests[i].Options).TokenIds;
                }
            })).ToList();
            threads.ForEach(x => x.Start());
            threads.ForEach(x => x.Join());
            for (int i = 0; i < requests.Length; i++) Assert.Equal(sequential[i], concurrent[i]);
        }
    }

    [Fact]
    public void The_per_token_decode_path_allocates_nothing()
    {
        using var session = Session(out _, out _);
        var model = (CpuTransformer)session.BackendFor("a");
        var loop = new GenerationLoop(model, null);
        var prompt = TinyModels.RandomIds(4, session.Config.VocabSize, 7);
        foreach (bool greedy in new[] { true, false })
        {
            var options = new GenerationOptions { MaxNewTokens = 40, Greedy = greedy, TopK = 10, TopP = 0.9, EosTokenIds = [] };
            using var threads = CpuParallel.Use(1);
            var cache = loop.Start(prompt, options, null);
            for (int i = 0; i < 3; i++) loop.Step(); // first decode sizes the scratch
            long before = GC.GetAllocatedBytesForCurrentThread();
            int steps = 0;
            while (steps < 30 && loop.Step() >= 0) steps++;
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.Equal(30, steps);
            Assert.True(allocated == 0, $"{(greedy ? "greedy" : "sampled")}: {steps} decode steps allocated {allocated} bytes");
            Assert.True(cache.Length > 30);
        }
    }

    [Fact]
    public async Task Streaming_gives_the_tokens_of_Generate_and_honours_cancellation()
    {
        using var session = Session(out _, out _);
        using var ctx = session.CreateContext("b");
        var prompt = TinyModels.RandomIds(5, session.Config.VocabSize, 3);
        var options = new GenerationOptions { MaxNewTokens = 12, Seed = 4, EosTokenIds = [] };
        var want = ctx.Generate(prompt, options);
        var got = new List<GeneratedToken>();
        await foreach (var t in ctx.GenerateAsync(prompt, options)) got.Add(t);
        Assert.Equal(want.TokenIds, got.Select(t => t.Id));
        Assert.Equal(Enumerable.Range(0, got.Count), got.Select(t => t.Index));
        Assert.Equal("max_new_tokens", got[^1].StopReason);
        Assert.All(got.SkipLast(1), t => Assert.Null(t.StopReason));

        using var cts = new CancellationTokenSource();
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var t in ctx.GenerateAsync(prompt, options, cts.Token))
                if (++seen == 3) cts.Cancel();
        });
        Assert.Equal(3, seen);
    }

    [Fact]
    public void Score_gives_per_token_log_probabilities_whose_mean_is_the_training_loss()
    {
        using var session = Session(out var a, out _);
        var ids = TinyModels.RandomIds(9, session.Config.VocabSize, 21);
        var score = session.CreateContext("a").Score(ids);
        Assert.Equal(8, score.LogProbs.Length);
        Assert.All(score.LogProbs, x => Assert.True(x < 0));
        var (sum, n) = new CpuTransformer(session.Model, a).Loss(TokenBatch.FromIds(1, ids.Length, ids));
        Assert.Equal(8, n);
        Assert.Equal(sum / n, score.Loss, 4);
        // Forward: logits as the backend computes them; hidden states are what the head multiplies.
        using var ctx = session.CreateContext("a");
        var f = ctx.Forward(ids, 1, ForwardOutputs.Logits | ForwardOutputs.HiddenStates);
        var want = CpuTransformer.ForInference(session.Model, a).ForwardLogits(ids, 1, ids.Length);
        Assert.Equal(want, f.Logits);
        Assert.Equal(ids.Length * session.Config.HiddenSize, f.HiddenStates!.Length);
    }

    [Fact]
    public void Adapters_load_and_unload_by_name_and_a_running_context_keeps_its_adapter()
    {
        using var session = Session(out _, out _);
        Assert.Equal(["a", "b"], session.Adapters.Names);
        var ctx = session.CreateContext("a");
        var ids = TinyModels.RandomIds(6, session.Config.VocabSize, 2);
        double before = ctx.Score(ids).Loss;
        Assert.True(session.Adapters.Unload("a"));
        Assert.False(session.Adapters.Unload("a"));
        var e = Assert.Throws<KeyNotFoundException>(() => ctx.Score(ids));
        Assert.Contains("adapter 'a' is not loaded (loaded: b)", e.Message);
        Assert.Throws<KeyNotFoundException>(() => session.CreateContext("a"));
        Assert.Throws<ArgumentException>(() => session.Adapters.Add("b", TinyModels.TrainedAdapter(session.Config, 3)));
        ctx.UseAdapter(null);
        Assert.NotEqual(before, ctx.Score(ids).Loss);
    }

    [Fact]
    public void Session_options_bound_requests()
    {
        var model = TinyModels.Model(5);
        using var session = InferenceSession.FromModel(model, new SessionOptions { MaxBatchSize = 2, MaxSequenceLength = 16 });
        using var ctx = session.CreateContext();
        Assert.Contains("exceeds SessionOptions.MaxBatchSize 2", Assert.Throws<ArgumentException>(() => ctx.Forward(new int[12], 3)).Message);
        Assert.Contains("exceeds the session's maximum 16", Assert.Throws<ArgumentException>(() => ctx.Score(new int[17])).Message);
        var r = ctx.Generate([1, 2, 3], new GenerationOptions { MaxNewTokens = 100, Greedy = true, EosTokenIds = [] });
        Assert.Equal("max_position_embeddings", r.StopReason);
        Assert.Equal(14, r.TokenIds.Count); // 16 positions computed; the token picked from the last one is still emitted
        Assert.Contains("Threads", Assert.Throws<ArgumentException>(() => InferenceSession.FromModel(model, new SessionOptions { Threads = -1 })).Message);
        Assert.Contains("device: expected", Assert.Throws<ArgumentException>(() => InferenceSession.FromModel(model, new SessionOptions { Device = "tpu" })).Message);
        Assert.Throws<NotSupportedException>(() => InferenceSession.FromModel(model, new SessionOptions { DType = SessionDType.BFloat16 }));
        Assert.Contains("EmulatorLibrary", Assert.Throws<DeviceUnavailableException>(() => InferenceSession.FromModel(model, new SessionOptions { Device = "cuda-emulated" })).Message);
        var missing = Path.Combine(Path.GetTempPath(), $"tpeft-no-such-{Guid.NewGuid():N}.so");
        Assert.Contains($"no emulated kernel library at {missing}",
            Assert.Throws<DeviceUnavailableException>(() => InferenceSession.FromModel(model, new SessionOptions { Device = "cuda-emulated", EmulatorLibrary = missing })).Message);
    }

    [Fact]
    public void Loads_from_a_Hugging_Face_cache_entry_whose_snapshot_files_are_links_into_blobs()
    {
        using var tmp = new TempDir();
        var model = TinyModels.Model(9);
        string plain = Path.Combine(tmp.Path, "plain");
        model.Save(plain);
        string entry = Path.Combine(tmp.Path, "hub", "models--org--tiny");
        string rev = "0123456789abcdef";
        Directory.CreateDirectory(Path.Combine(entry, "blobs"));
        Directory.CreateDirectory(Path.Combine(entry, "refs"));
        Directory.CreateDirectory(Path.Combine(entry, "snapshots", rev));
        File.WriteAllText(Path.Combine(entry, "refs", "main"), rev + "\n");
        foreach (var f in Directory.GetFiles(plain))
        {
            string blob = Path.Combine(entry, "blobs", Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f))));
            File.Copy(f, blob);
            File.CreateSymbolicLink(Path.Combine(entry, "snapshots", rev, Path.GetFileName(f)), Path.Combine("..", "..", "blobs", Path.GetFileName(blob)));
        }
        using var session = InferenceSession.Load(entry);
        Assert.Equal(Path.Combine(entry, "snapshots", rev), session.ModelPath);
        var ids = TinyModels.RandomIds(6, model.Config.VocabSize, 1);
        Assert.Equal(CpuTransformer.ForInference(model).ForwardLogits(ids, 1, 6), session.CreateContext().Forward(ids).Logits);
        Assert.Null(session.Tokenizer); // config.json and weights only: token ids work without one
        var e = Assert.Throws<FileNotFoundException>(() => InferenceSession.Load(Path.Combine(tmp.Path, "hub")));
        Assert.Contains("no config.json", e.Message);
    }

    [Fact]
    public void A_context_refuses_a_second_concurrent_request()
    {
        using var session = Session(out _, out _);
        using var ctx = session.CreateContext();
        var prompt = TinyModels.RandomIds(3, session.Config.VocabSize, 1);
        var e = Assert.Throws<InvalidOperationException>(() =>
        {
            foreach (var _ in ctx.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 5 }).ToBlockingEnumerable())
                ctx.Score(prompt);
        });
        Assert.Contains("one context per concurrent request", e.Message);
    }

    [Fact]
    public void LoRA_training_through_the_session_leaves_the_shared_weights_and_their_gradient_state_alone()
    {
        using var session = Session(out _, out _);
        var ids = TinyModels.RandomIds(16, session.Config.VocabSize, 5);
        using var ctx = session.CreateContext("a");
        var before = ctx.Forward(ids).Logits!;
        var fresh = LoraAdapter.Create(session.Config, new LoraConfig { R = 2, Alpha = 4, TargetModules = ["q_proj", "v_proj"] }, 3);
        using var lora = session.CreateTrainingContext(fresh, options: new TrainingStepOptions { LearningRate = 1e-2 });
        var batch = TokenBatch.FromIds(2, 8, ids);
        double first = lora.Step(batch);
        for (int i = 0; i < 10; i++) lora.Step(batch);
        Assert.True(lora.Loss(batch) < first, "LoRA steps lower the loss");
        Assert.All(session.Model.Parameters(), p => Assert.Null(p.Grad));
        using var full = session.CreateTrainingContext(null, fullFineTune: true);
        full.Step(batch);
        Assert.NotSame(session.Model, full.Model);
        Assert.All(session.Model.Parameters(), p => Assert.Null(p.Grad));
        Assert.Equal(before, ctx.Forward(ids).Logits);
    }

    /// <summary>Three LoRA steps (r=2 on every linear layer, dropout 0.1, seed 3) on a fixed batch: the losses and the
    /// adapter's weights after them. Two step options that must not change the arithmetic give equal results.</summary>
    internal static (double[] Losses, float[][] Weights) ThreeLoraSteps(InferenceSession session, TrainingStepOptions options)
    {
        var batch = TokenBatch.FromIds(2, 8, TinyModels.RandomIds(16, session.Config.VocabSize, 5));
        var adapter = LoraAdapter.Create(session.Config, new LoraConfig { R = 2, Alpha = 4, Dropout = 0.1, TargetModules = ["all-linear"] }, 3);
        using var t = session.CreateTrainingContext(adapter, options: options);
        var losses = Enumerable.Range(0, 3).Select(_ => t.Step(batch)).ToArray();
        return (losses, adapter.Parameters().Select(p => p.Data.ToArray()).ToArray());
    }

    [Fact]
    public void Training_with_recompute_takes_the_same_steps_to_the_bit()
    {
        using var session = Session(out _, out _);
        var (storedLosses, storedWeights) = ThreeLoraSteps(session, new TrainingStepOptions { LearningRate = 1e-2, Seed = 4, Recompute = false });
        var (recomputedLosses, recomputedWeights) = ThreeLoraSteps(session, new TrainingStepOptions { LearningRate = 1e-2, Seed = 4, Recompute = true });
        Assert.Equal(storedLosses, recomputedLosses);
        Assert.Equal(storedWeights, recomputedWeights);
    }

    /// <summary>
    /// Hot swaps in place while contexts generate on their own threads. The two adapters swapped are the same function
    /// written two ways (A doubled, B halved: bit-identical outputs, powers of two scale exactly), so every whole step
    /// gives the reference token; a step that saw a half-done copy (new A with old B: the LoRA update doubled, checked
    /// below to change the tokens) would not.
    /// </summary>
    [Fact]
    public async Task An_in_place_swap_during_generation_lands_between_tokens_never_inside_one()
    {
        var model = TinyModels.Model(6);
        var one = TinyModels.TrainedAdapter(model.Config, seed: 21);
        foreach (var m in one.Modules()) for (int i = 0; i < m.B.Length; i++) m.B.Data[i] *= 10; // the update dominates the logits
        LoraAdapter Scaled(float a, float b)
        {
            var x = one.Clone();
            foreach (var m in x.Modules())
            {
                for (int i = 0; i < m.A.Length; i++) m.A.Data[i] *= a;
                for (int i = 0; i < m.B.Length; i++) m.B.Data[i] *= b;
            }
            return x;
        }
        var two = Scaled(2, 0.5f);
        var greedy = new GenerationOptions { MaxNewTokens = 48, Greedy = true, EosTokenIds = [] };
        var prompts = Enumerable.Range(0, 6).Select(i => TinyModels.RandomIds(4 + i, model.Config.VocabSize, 40 + i)).ToArray();
        using var session = InferenceSession.FromModel(model, new SessionOptions { Threads = 1 });
        session.Adapters.Add("t", one.Clone());
        IReadOnlyList<int>[] want;
        using (var ctx = session.CreateContext("t")) want = prompts.Select(p => ctx.Generate(p, greedy).TokenIds).ToArray();
        using (var reference = InferenceSession.FromModel(model, new SessionOptions { Threads = 1 }))
        {
            reference.Adapters.Add("two", two);
            reference.Adapters.Add("torn", Scaled(2, 1));
            using var ctx = reference.CreateContext("two");
            Assert.Equal(want, prompts.Select(p => ctx.Generate(p, greedy).TokenIds));
            ctx.UseAdapter("torn");
            Assert.NotEqual(want, prompts.Select(p => ctx.Generate(p, greedy).TokenIds));
        }

        // The swapper runs on its own thread from before the first request to after the last; each worker keeps
        // generating until hundreds of swaps have landed while requests ran.
        const int swapsWanted = 300;
        int inPlace = 0;
        bool stop = false;
        var swapper = new Thread(() =>
        {
            for (int i = 0; !Volatile.Read(ref stop); i++)
                if (session.Adapters.Replace("t", i % 2 == 0 ? two : one)) Interlocked.Increment(ref inPlace);
        });
        swapper.Start();
        SpinWait.SpinUntil(() => Volatile.Read(ref inPlace) > 0, TimeSpan.FromSeconds(30));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        var workers = Enumerable.Range(0, 3).Select(w => Task.Factory.StartNew(async () =>
        {
            using var ctx = session.CreateContext("t");
            var got = new List<IReadOnlyList<int>>();
            for (int round = 0; round < 2 || (Volatile.Read(ref inPlace) < swapsWanted && DateTime.UtcNow < deadline); round++)
                for (int i = 0; i < prompts.Length; i++)
                {
                    if (w == 0) got.Add((await ctx.GenerateAsync(prompts[i], greedy).ToListAsync()).Select(t => t.Id).ToArray());
                    else got.Add(ctx.Generate(prompts[i], greedy).TokenIds);
                }
            return got;
        }, TaskCreationOptions.LongRunning).Unwrap()).ToArray();
        List<IReadOnlyList<int>>[] results;
        try { results = await Task.WhenAll(workers).WaitAsync(TimeSpan.FromMinutes(2)); }
        finally { Volatile.Write(ref stop, true); swapper.Join(); }
        Assert.True(inPlace >= swapsWanted, $"only {inPlace} in-place swaps ran during generation");
        foreach (var got in results)
            for (int k = 0; k < got.Count; k++) Assert.Equal(want[k % prompts.Length], got[k]);
    }
}
