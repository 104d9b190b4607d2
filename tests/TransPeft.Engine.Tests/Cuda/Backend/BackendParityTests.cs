using System.Globalization;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Tests.Training;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// A whole training step of <see cref="CudaTransformer"/> against <see cref="CpuTransformer"/>: loss and every
/// gradient of LoRA + Trans-PEFT (Philox masks and layer drops, LoRA dropout) and of full fine-tuning, the
/// evaluation loss and logits, explicit masks, gradient accumulation, host weight updates reaching the device, and
/// the on-device AdamW. Both sides use the same bf16-rounded weights, so the differences left are bf16 activations
/// and summation order. Run on the emulated device here (checking the backend's orchestration and these tolerances)
/// and on the GPU by <see cref="GpuBackendParityTests"/>.
/// </summary>
public abstract class BackendParityTests
{
    internal abstract IComputeDevice NewDevice();

    /// <summary>How close to the CPU this device must come (see <see cref="ParityTolerance"/>).</summary>
    internal abstract ParityTolerance Tolerance { get; }

    /// <summary>True on a real GPU: results go to the parity report.</summary>
    protected abstract bool IsGpu { get; }

    /// <summary>False for the emulator's exact mode, where bf16 tensors keep their fp32 values.</summary>
    protected virtual bool StoresBf16 => true;

    protected void Report(string name, Func<string> check) => ParityReport.Run(IsGpu, name, check);

    internal static ModelConfig Config(string type = "llama", int hidden = 32, int heads = 4, int kvHeads = 2, int headDim = 8,
        int inter = 48, int vocab = 61, int layers = 2, bool tied = false) => new()
    {
        ModelType = type, HiddenSize = hidden, IntermediateSize = inter, NumLayers = layers, NumHeads = heads, NumKvHeads = kvHeads,
        HeadDim = headDim, VocabSize = vocab, RmsNormEps = 1e-5, RopeTheta = 10000, TieWordEmbeddings = tied, MaxPositionEmbeddings = 256,
        AttentionBias = type == "qwen2",
    };

    internal static TransformerModel Model(ModelConfig c, int seed)
    {
        var m = TransformerModel.CreateRandom(c, seed, initStd: 0.2);
        // Nonzero biases and norm weights, so their gradients and effects are tested too.
        var rng = new Random(seed + 7);
        foreach (var p in m.Parameters())
            if (p.Shape.Length == 1)
                for (int i = 0; i < p.Length; i++) p.Data[i] += (float)(rng.NextDouble() - 0.5) * 0.2f;
        return Bf16Models.Round(m);
    }

    internal static LoraAdapter Adapter(ModelConfig c, int seed, double dropout = 0, int rank = 4) =>
        Bf16Models.Round(TinyAdapter(c, seed, dropout, rank));

    private static LoraAdapter TinyAdapter(ModelConfig c, int seed, double dropout, int rank)
    {
        var a = LoraAdapter.Create(c, new LoraConfig { R = rank, Alpha = 2 * rank, Dropout = dropout, TargetModules = ["all-linear"] }, seed);
        var rng = new Random(seed + 100);
        foreach (var m in a.Modules())
            for (int i = 0; i < m.B.Length; i++) m.B.Data[i] = (float)(rng.NextDouble() - 0.5) * 0.2f;
        return a;
    }

    /// <summary>Random ids; the first two labels of row 0 are not counted (a prompt), the rest are.</summary>
    internal static TokenBatch Batch(ModelConfig c, int b, int t, int seed)
    {
        var ids = TinyModels.RandomIds(b * t, c.VocabSize, seed);
        var labels = (int[])ids.Clone();
        labels[0] = labels[1] = TokenBatch.IgnoreIndex;
        return new TokenBatch(b, t, ids, labels);
    }

    /// <summary>A Philox Trans-PEFT context whose drops hit some layers but not all (searching steps from 1).</summary>
    internal static StepContext PhiloxContext(int layers, double pMask, double pDrop, ulong seed = 1234, uint microBatch = 1)
    {
        for (uint step = 1; step < 10_000; step++)
        {
            var stream = new RandomStream(seed, step, microBatch);
            var p = new PhiloxFfnPerturbation(stream, pMask, pDrop);
            int dropped = Enumerable.Range(0, layers).Count(p.IsDropped);
            if (pDrop == 0 || (dropped > 0 && dropped < layers)) return new StepContext(stream, p, true);
        }
        throw new InvalidOperationException("no step drops some but not all layers");
    }

    private static string F(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>Runs one ForwardBackward on both backends and compares loss, count and every trainable gradient.</summary>
    private (double LossRatio, double WorstGrad) CompareStep(ITrainableModel cpu, CudaTransformer gpu, TokenBatch batch, StepContext ctx, string what)
    {
        int counted = batch.CountedTargets();
        cpu.ZeroGrad();
        gpu.ZeroGrad();
        var (cpuLoss, cpuCount) = cpu.ForwardBackward(batch, 1f / counted, ctx);
        var (gpuLoss, gpuCount) = gpu.ForwardBackward(batch, 1f / counted, ctx);
        Assert.Equal(cpuCount, gpuCount);
        double lossRatio = ParityCheck.Relative($"{what} loss", cpuLoss, gpuLoss, Tolerance.Loss);
        Assert.Equal(cpu.TrainableParameters.Count, gpu.TrainableParameters.Count);
        double worst = 0;
        for (int i = 0; i < cpu.TrainableParameters.Count; i++)
        {
            var c = cpu.TrainableParameters[i];
            var g = gpu.TrainableParameters[i];
            Assert.Equal(c.Name, g.Name);
            worst = Math.Max(worst, ParityCheck.Gradient($"{what} grad {c.Name}", c.Grad, g.Grad, Tolerance));
        }
        return (lossRatio, worst);
    }

    [SkippableTheory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    public void LoraTransPeftStepMatchesTheCpu(string type)
    {
        Report($"lora+transpeft ({type}, Philox masks and drops, LoRA dropout)", () =>
        {
            var c = Config(type);
            var cpu = new CpuTransformer(Model(c, 3), Adapter(c, 4, dropout: 0.1));
            var gm = Model(c, 3);
            var ga = Adapter(c, 4, dropout: 0.1);
            using var gpu = new CudaTransformer(NewDevice(), gm, ga, ownsDevice: true);
            var ctx = PhiloxContext(c.NumLayers, pMask: 0.25, pDrop: 0.5);
            var (loss, grad) = CompareStep(cpu, gpu, Batch(c, 2, 11, 5), ctx, "lora+transpeft");
            foreach (var m in ga.Modules().Where(m => m.Projection.IsFfn() && ctx.Perturbation!.IsDropped(m.Layer)))
            {
                Assert.All(m.A.Grad!, g => Assert.Equal(0f, g));
                Assert.All(m.B.Grad!, g => Assert.Equal(0f, g));
            }
            Assert.All(gm.Parameters(), p => Assert.Null(p.Grad));
            return $"loss {F(loss)}x, worst gradient {F(grad)}x of tolerance";
        });
    }

    [SkippableTheory]
    [InlineData("llama", false)]
    [InlineData("qwen2", true)]
    public void FullFineTuneStepMatchesTheCpu(string type, bool tied)
    {
        Report($"full fine-tune ({type}{(tied ? ", tied" : "")})", () =>
        {
            var c = Config(type, tied: tied);
            var cpu = new CpuTransformer(Model(c, 8), fullFineTune: true);
            using var gpu = new CudaTransformer(NewDevice(), Model(c, 8), fullFineTune: true, ownsDevice: true);
            var (loss, grad) = CompareStep(cpu, gpu, Batch(c, 3, 9, 9), new StepContext(new RandomStream(5, 1, 0), null, true), "full FT");
            return $"loss {F(loss)}x, worst gradient {F(grad)}x of tolerance";
        });
    }

    [SkippableTheory]
    [InlineData(64, 37)]
    [InlineData(128, 37)]
    [InlineData(64, 130)]
    public void TensorCoreHeadDimsMatchTheCpu(int headDim, int t)
    {
        Report($"lora+transpeft head_dim {headDim}, T {t}", () =>
        {
            var c = Config("llama", hidden: 64, heads: 4, kvHeads: 2, headDim: headDim, inter: 96, vocab: 53);
            var cpu = new CpuTransformer(Model(c, 21), Adapter(c, 22, dropout: 0.05));
            using var gpu = new CudaTransformer(NewDevice(), Model(c, 21), Adapter(c, 22, dropout: 0.05), ownsDevice: true);
            var (loss, grad) = CompareStep(cpu, gpu, Batch(c, 1, t, 23), PhiloxContext(c.NumLayers, 0.2, 0), "head_dim " + headDim);
            return $"loss {F(loss)}x, worst gradient {F(grad)}x of tolerance";
        });
    }

    [SkippableFact]
    public void ExplicitMasksAndDropsMatchTheCpu()
    {
        var c = Config("qwen2");
        var batch = Batch(c, 2, 7, 31);
        var rng = new Random(32);
        var masks = Enumerable.Range(0, c.NumLayers)
            .Select(_ => Enumerable.Range(0, batch.BatchSize * batch.SeqLen * c.IntermediateSize).Select(_ => rng.NextDouble() < 0.2 ? 0f : 1f).ToArray()).ToArray();
        var ctx = new StepContext(new RandomStream(1, 1, 0), new ExplicitFfnPerturbation(masks, [false, true]), true);
        var cpu = new CpuTransformer(Model(c, 30), Adapter(c, 33));
        using var gpu = new CudaTransformer(NewDevice(), Model(c, 30), Adapter(c, 33), ownsDevice: true);
        CompareStep(cpu, gpu, batch, ctx, "explicit masks");
        // The same masks reach ForwardLogits (evaluation with a perturbation).
        ParityCheck.Logits("logits with explicit masks", cpu.ForwardLogits(batch.InputIds, 2, 7, ctx.Perturbation),
            gpu.ForwardLogits(batch.InputIds, 2, 7, ctx.Perturbation), Tolerance);
    }

    [SkippableFact]
    public void EvaluationLossAndLogitsMatchTheCpu()
    {
        var c = Config("llama", tied: true);
        var cpu = new CpuTransformer(Model(c, 40), Adapter(c, 41, dropout: 0.3));
        using var gpu = CudaTransformer.ForInference(NewDevice(), Model(c, 40), Adapter(c, 41, dropout: 0.3), ownsDevice: true);
        foreach (var (b, t) in new[] { (2, 13), (1, 5), (3, 8) }) // shrinking and growing shapes reuse or grow the arena
        {
            var batch = Batch(c, b, t, 42 + t);
            var (cl, cc) = cpu.Loss(batch);
            var (gl, gc) = gpu.Loss(batch);
            Assert.Equal(cc, gc);
            ParityCheck.Relative($"eval loss {b}x{t}", cl, gl, Tolerance.Loss);
            ParityCheck.Logits($"logits {b}x{t}", cpu.ForwardLogits(batch.InputIds, b, t), gpu.ForwardLogits(batch.InputIds, b, t), Tolerance);
        }
        Assert.Empty(gpu.TrainableParameters);
        Assert.Throws<InvalidOperationException>(() => gpu.ForwardBackward(Batch(c, 1, 4, 1), 1f, StepContext.Eval));
    }

    [SkippableFact]
    public void BadInputFailsWithTheSameErrorsAsTheCpu()
    {
        var c = Config();
        using var gpu = new CudaTransformer(NewDevice(), Model(c, 50), Adapter(c, 51), ownsDevice: true);
        var bad = Batch(c, 1, 4, 52);
        bad.InputIds[2] = c.VocabSize;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.Loss(bad));
        Assert.Contains($"token id {c.VocabSize} at position 2", e.Message);
        var badLabel = Batch(c, 1, 4, 53);
        badLabel.Labels[3] = -5;
        Assert.Throws<ArgumentOutOfRangeException>(() => gpu.ForwardBackward(badLabel, 1f, StepContext.Eval));
        Assert.Throws<ArgumentException>(() => gpu.Loss(new TokenBatch(1, c.MaxPositionEmbeddings + 1, new int[c.MaxPositionEmbeddings + 1], new int[c.MaxPositionEmbeddings + 1])));
        Assert.Throws<ArgumentException>(() => gpu.ForwardLogits(new int[5], 2, 3));
    }

    [SkippableFact]
    public void GradientsAddUpOverMicroBatchesAndHostUpdatesReachTheDevice()
    {
        var c = Config();
        var cm = Model(c, 60);
        var ca = Adapter(c, 61);
        var cpu = new CpuTransformer(cm, ca);
        var ga = Adapter(c, 61);
        using var gpu = new CudaTransformer(NewDevice(), Model(c, 60), ga, ownsDevice: true);
        var b1 = Batch(c, 2, 6, 62);
        var b2 = Batch(c, 1, 9, 63);
        float scale = 1f / (b1.CountedTargets() + b2.CountedTargets());
        cpu.ZeroGrad(); gpu.ZeroGrad();
        foreach (var (batch, j) in new[] { (b1, 0u), (b2, 1u) })
        {
            var ctx = new StepContext(new RandomStream(9, 3, j), new PhiloxFfnPerturbation(new RandomStream(9, 3, j), 0.3, 0), true);
            cpu.ForwardBackward(batch, scale, ctx);
            gpu.ForwardBackward(batch, scale, ctx);
        }
        for (int i = 0; i < cpu.TrainableParameters.Count; i++)
            ParityCheck.Gradient("accumulated " + cpu.TrainableParameters[i].Name, cpu.TrainableParameters[i].Grad, gpu.TrainableParameters[i].Grad, Tolerance);

        // The host optimizer changes Data; the next forward must see it (host-optimizer mode uploads every time).
        foreach (var (cp, gp) in ca.Parameters().Zip(ga.Parameters()))
            for (int i = 0; i < cp.Length; i++) { cp.Data[i] *= -1.5f; gp.Data[i] *= -1.5f; }
        var (cl, _) = cpu.Loss(b1);
        var (gl, _) = gpu.Loss(b1);
        ParityCheck.Relative("loss after a host update", cl, gl, Tolerance.Loss);
    }

    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void RecomputeGivesTheStoredPathsGradientsWithASmallerArena(bool fullFineTune)
    {
        var c = Config("qwen2", layers: 3);
        var batch = Batch(c, 2, 9, 17);
        var ctx = PhiloxContext(c.NumLayers, pMask: 0.25, pDrop: 0.4);
        CudaTransformer Make(bool recompute)
        {
            var options = new CudaTransformerOptions { Recompute = recompute };
            return fullFineTune
                ? new CudaTransformer(NewDevice(), Model(c, 5), fullFineTune: true, options: options, ownsDevice: true)
                : new CudaTransformer(NewDevice(), Model(c, 5), Adapter(c, 6, dropout: 0.1), options: options, ownsDevice: true);
        }
        using var stored = Make(false);
        using var recomputed = Make(true);
        stored.ZeroGrad(); recomputed.ZeroGrad();
        float scale = 1f / batch.CountedTargets();
        var (ls, cs) = stored.ForwardBackward(batch, scale, ctx);
        var (lr, cr) = recomputed.ForwardBackward(batch, scale, ctx);
        Assert.Equal(cs, cr);
        for (int i = 0; i < stored.TrainableParameters.Count; i++)
        {
            var (a, b) = (stored.TrainableParameters[i], recomputed.TrainableParameters[i]);
            Assert.Equal(a.Name, b.Name);
            // The same kernels on the same inputs: identical bits wherever launches are deterministic (the emulators);
            // a GPU's atomics may reorder sums, so there the two paths meet the CPU-parity tolerance instead.
            if (IsGpu) ParityCheck.Gradient($"recompute grad {a.Name}", a.Grad, b.Grad, Tolerance);
            else Assert.True(a.Grad.AsSpan().SequenceEqual(b.Grad), $"{a.Name}: recomputed gradient differs from the stored path's");
        }
        if (IsGpu) ParityCheck.Relative("recompute loss", ls, lr, Tolerance.Loss);
        else Assert.Equal(ls, lr);
        long s = stored.ActivationLayout!.Arena.TotalBytes, r = recomputed.ActivationLayout!.Arena.TotalBytes;
        Assert.True(r < s, $"the recompute arena takes {r} bytes, the stored one {s}");
        // Two layer sets fewer: at least their g and u (bf16 [N, I] each).
        Assert.True(s - r >= 2 * 2 * 2L * batch.BatchSize * batch.SeqLen * c.IntermediateSize, $"saved only {s - r} bytes");
    }

    /// <summary>Replayed graphs against plain launches of the same steps: on an emulated device (whose capture copies the
    /// arguments as the driver does) to the bit, on a GPU to fp32 rounding.</summary>
    private void AssertSameStep(string what, (double Loss, int Counted) eager, (double Loss, int Counted) graphed, CudaTransformer e, CudaTransformer g)
    {
        Assert.Equal(eager.Counted, graphed.Counted);
        if (IsGpu) ParityCheck.Relative($"{what} loss", eager.Loss, graphed.Loss, 1e-6);
        else Assert.Equal(eager.Loss, graphed.Loss);
        for (int i = 0; i < e.TrainableParameters.Count; i++)
        {
            var name = e.TrainableParameters[i].Name;
            if (IsGpu) ParityCheck.Elementwise($"{what} grad {name}", e.TrainableParameters[i].Grad, g.TrainableParameters[i].Grad, 1e-7, 1e-5);
            else Assert.True(e.TrainableParameters[i].Grad.AsSpan().SequenceEqual(g.TrainableParameters[i].Grad), $"{what}: gradient of {name} differs");
        }
    }

    /// <summary>
    /// Graphs keyed by shape only: N training steps whose random streams, loss scales and batches all change, with
    /// Trans-PEFT masks (and layer drops), LoRA dropout and the on-device AdamW, replaying captured graphs, give the
    /// losses, gradients and weights of the same N steps with plain launches; one capture per shape and drop pattern
    /// (the emulated devices copy captured arguments as the driver does, so a per-step value baked into a graph would
    /// show here as a different loss).
    /// </summary>
    [SkippableTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void GraphReplayGivesTheEagerResults(bool layerDrops)
    {
        var c = Config("qwen2", layers: 3);
        var deviceAdam = new CudaTransformerOptions { DeviceOptimizer = true };
        using var eager = new CudaTransformer(NewDevice(), Model(c, 1), Adapter(c, 2, dropout: 0.1), options: deviceAdam, ownsDevice: true);
        using var graphed = new CudaTransformer(NewDevice(), Model(c, 1), Adapter(c, 2, dropout: 0.1),
            options: deviceAdam with { CaptureGraphs = true }, ownsDevice: true);
        Assert.True(graphed.Device.SupportsGraphs);
        using var eagerAdam = new CudaAdamW(eager, weightDecay: 0.01);
        using var graphedAdam = new CudaAdamW(graphed, weightDecay: 0.01);
        var patterns = new HashSet<string>();
        const int steps = 6;
        for (int step = 1; step <= steps; step++)
        {
            var batch = Batch(c, 2, 12, 10 + step);
            var stream = new RandomStream(7, (uint)step, (uint)(step % 2));
            var ctx = new StepContext(stream, new PhiloxFfnPerturbation(stream, 0.2, layerDrops ? 0.5 : 0), true);
            patterns.Add(string.Concat(Enumerable.Range(0, c.NumLayers).Select(l => ctx.Perturbation!.IsDropped(l) ? '1' : '0')));
            float lossScale = 1f / (batch.CountedTargets() + step);
            eager.ZeroGrad(); graphed.ZeroGrad();
            var e = eager.ForwardBackward(batch, lossScale, ctx);
            var g = graphed.ForwardBackward(batch, lossScale, ctx);
            eager.CopyGradientsToHost(); graphed.CopyGradientsToHost();
            AssertSameStep($"graph step {step}", e, g, eager, graphed);
            eagerAdam.Update(1e-2, 1.0); graphedAdam.Update(1e-2, 1.0);
        }
        Assert.Equal(steps, graphed.GraphLaunches);
        Assert.Equal(patterns.Count, graphed.GraphCaptures); // one per drop pattern of this shape; 1 without drops
        if (!layerDrops) Assert.Equal(1, graphed.GraphCaptures);
        eager.SyncToHost(); graphed.SyncToHost();
        for (int i = 0; i < eager.TrainableParameters.Count; i++)
        {
            var (we, wg) = (eager.TrainableParameters[i].Data, graphed.TrainableParameters[i].Data);
            if (IsGpu) ParityCheck.Elementwise($"graph weights {eager.TrainableParameters[i].Name}", we, wg, 1e-7, 1e-5);
            else Assert.True(we.AsSpan().SequenceEqual(wg), $"weights of {eager.TrainableParameters[i].Name} differ after {steps} steps");
        }

        // Evaluation: one more graph, replayed across batches of its shape; another shape captures once more, and the
        // training shape's graphs are still cached.
        int captures = graphed.GraphCaptures;
        foreach (var (b, t, seed) in new[] { (2, 12, 3), (2, 12, 4), (1, 7, 5), (1, 7, 6) })
        {
            var batch = Batch(c, b, t, seed);
            AssertSameStep($"graph eval {b}x{t}", eager.Loss(batch), graphed.Loss(batch), eager, graphed);
        }
        Assert.Equal(captures + 2, graphed.GraphCaptures);
        var again = new RandomStream(7, 1, 1);
        var last = new StepContext(again, new PhiloxFfnPerturbation(again, 0.2, 0), true);
        eager.ZeroGrad(); graphed.ZeroGrad();
        var (el, gl) = (eager.ForwardBackward(Batch(c, 2, 12, 30), 0.01f, last), graphed.ForwardBackward(Batch(c, 2, 12, 30), 0.01f, last));
        eager.CopyGradientsToHost(); graphed.CopyGradientsToHost();
        AssertSameStep("graph step after evaluation", el, gl, eager, graphed);
        if (!layerDrops) Assert.Equal(captures + 2, graphed.GraphCaptures);
    }

    [SkippableFact]
    public void DeviceAdamWMatchesHostAdamWOnTheSameGradients()
    {
        var c = Config("qwen2");
        var gm = Model(c, 70);
        var options = new CudaTransformerOptions { DeviceOptimizer = true };
        using var gpu = new CudaTransformer(NewDevice(), gm, fullFineTune: true, options: options, ownsDevice: true);
        using var adam = new CudaAdamW(gpu, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1);
        var host = Model(c, 70); // the same weights on the host, updated by Training/AdamW.cs
        var hostParams = host.Parameters().ToList();
        foreach (var p in hostParams) p.EnableGrad();
        var hostAdam = new AdamW(hostParams, 0.9, 0.95, 1e-8, 0.1);
        for (int step = 1; step <= 3; step++)
        {
            var batch = Batch(c, 2, 8, 70 + step);
            gpu.ZeroGrad();
            gpu.ForwardBackward(batch, 1f / batch.CountedTargets(), new StepContext(new RandomStream(1, (uint)step, 0), null, true));
            gpu.CopyGradientsToHost();
            for (int i = 0; i < hostParams.Count; i++) gpu.TrainableParameters[i].Grad.AsSpan().CopyTo(hostParams[i].Grad);
            double maxNorm = step == 2 ? 1e-3 : 1.0; // step 2 clips
            double hostNorm = GradientClipping.ClipGlobalNorm(hostParams, maxNorm);
            double deviceNorm = adam.Update(lr: 1e-3, maxNorm);
            ParityCheck.Relative($"gradient norm, step {step}", hostNorm, deviceNorm, 1e-4);
            hostAdam.Update(1e-3);
        }
        gpu.SyncToHost();
        for (int i = 0; i < hostParams.Count; i++)
            ParityCheck.Elementwise($"AdamW {hostParams[i].Name}", hostParams[i].Data, gpu.TrainableParameters[i].Data, 1e-5, 1e-5);
        var moments = adam.DownloadMoments();
        for (int i = 0; i < hostParams.Count; i++)
        {
            ParityCheck.Elementwise($"exp_avg {hostParams[i].Name}", hostAdam.FirstMoment(i), moments[i].M, 1e-7, 1e-4);
            ParityCheck.Elementwise($"exp_avg_sq {hostParams[i].Name}", hostAdam.SecondMoment(i), moments[i].V, 1e-9, 1e-4);
        }
        // The bf16 copies the forward reads were refreshed by the step: the loss is that of the updated weights.
        var check = Batch(c, 1, 6, 99);
        foreach (var p in hostParams) p.DisableGrad();
        var (cl, _) = new CpuTransformer(StoresBf16 ? Bf16Models.Round(host) : host).Loss(check);
        var (gl, _) = gpu.Loss(check);
        ParityCheck.Relative("loss after device AdamW", cl, gl, Tolerance.Loss);
    }

    /// <summary>4 steps of LoRA + Trans-PEFT (masks, drops, LoRA dropout) with accumulation and validation every 2 steps.</summary>
    private static TrainingOptions TrainerOptions(int warmupSteps, double maxGradNorm) => new()
    {
        Steps = 4, BatchSize = 2, GradAccum = 2, LearningRate = 1e-2, WarmupSteps = warmupSteps, Seed = 3, PMask = 0.2, PDrop = 0.3,
        LoraDropout = 0.1, EvalEvery = 2, SaveEvery = 0, KeepCheckpoints = 0, MaxGradNorm = maxGradNorm, WeightDecay = 0.01,
    };

    [SkippableFact]
    public void TheHostTrainerAndAdamWTrainTheBackendUnchanged()
    {
        Report("trainer: 4 steps LoRA + Trans-PEFT, host AdamW", () =>
        {
            var c = Config(vocab: TrainerTestKit.Vocab);
            var data = TrainerTestKit.MakeData();
            var options = TrainerOptions(warmupSteps: 0, maxGradNorm: 1.0);
            var cpuAdapter = Adapter(c, 5, dropout: 0.1);
            var gpuAdapter = Adapter(c, 5, dropout: 0.1);
            var cpu = new CpuTransformer(Model(c, 4), cpuAdapter);
            using var gpu = new CudaTransformer(NewDevice(), Model(c, 4), gpuAdapter, ownsDevice: true);
            string cpuDir = TrainerTestKit.TempDir(), gpuDir = TrainerTestKit.TempDir();
            var cpuRun = new Trainer(cpu, data, options, cpuDir, cpuAdapter.Save).Run();
            var gpuRun = new Trainer(gpu, data, options, gpuDir, gpuAdapter.Save).Run();
            Assert.True(gpuRun.Completed);
            Assert.Equal(cpuRun.SessionLosses.Count, gpuRun.SessionLosses.Count);
            double worst = 0;
            for (int i = 0; i < cpuRun.SessionLosses.Count; i++)
                worst = Math.Max(worst, ParityCheck.Relative($"step {i + 1} loss", cpuRun.SessionLosses[i], gpuRun.SessionLosses[i], Tolerance.Loss));
            var cpuVal = TrainerTestKit.Metrics(cpuDir).Where(o => o.ContainsKey("val_loss")).Select(o => o["val_loss"]!.GetValue<double>()).ToArray();
            var gpuVal = TrainerTestKit.Metrics(gpuDir).Where(o => o.ContainsKey("val_loss")).Select(o => o["val_loss"]!.GetValue<double>()).ToArray();
            Assert.Equal(2, gpuVal.Length);
            for (int i = 0; i < cpuVal.Length; i++) worst = Math.Max(worst, ParityCheck.Relative($"validation loss {i}", cpuVal[i], gpuVal[i], Tolerance.Loss));
            // What the trainer saved is the host adapter the backend trained (host-optimizer mode: the host is authoritative).
            var saved = LoraAdapter.Load(gpuRun.FinalWeights!, c);
            foreach (var (want, got) in gpuAdapter.Parameters().Zip(saved.Parameters())) Assert.Equal(want.Data, got.Data);
            return $"train and validation losses within {worst:0.00}x of tolerance";
        });
    }

    [SkippableFact]
    public void TheTrainerRunsTheDeviceAdamWAndResumesBitIdentically()
    {
        Report("trainer: 4 steps LoRA + Trans-PEFT, device AdamW, resume", () =>
        {
            var c = Config(vocab: TrainerTestKit.Vocab);
            var data = TrainerTestKit.MakeData();
            var options = TrainerOptions(warmupSteps: 1, maxGradNorm: 0.5); // step 1 warms up; clipping bites
            var deviceOptimizer = new CudaTransformerOptions { DeviceOptimizer = true };
            (CudaTransformer Model, LoraAdapter Adapter) Make()
            {
                var adapter = Adapter(c, 5, dropout: 0.1);
                return (new CudaTransformer(NewDevice(), Model(c, 4), adapter, options: deviceOptimizer, ownsDevice: true), adapter);
            }

            // The device run against the CPU with its host AdamW: the same trajectory within the parity tolerance.
            var cpuAdapter = Adapter(c, 5, dropout: 0.1);
            var cpuRun = new Trainer(new CpuTransformer(Model(c, 4), cpuAdapter), data, options, TrainerTestKit.TempDir(), cpuAdapter.Save).Run();
            string fullDir = TrainerTestKit.TempDir();
            var (full, fullAdapter) = Make();
            TrainingResult fullRun;
            using (full)
            {
                var trainer = new Trainer(full, data, options, fullDir, fullAdapter.Save);
                Assert.IsType<DeviceAdamW>(trainer.Optimizer);
                fullRun = trainer.Run();
                // Gradients never came to the host: its buffers are as ZeroGrad left them.
                foreach (var p in full.TrainableParameters) Assert.All(p.Grad!, g => Assert.Equal(0f, g));
            }
            Assert.True(fullRun.Completed);
            double worst = 0;
            for (int i = 0; i < cpuRun.SessionLosses.Count; i++)
                worst = Math.Max(worst, ParityCheck.Relative($"step {i + 1} loss", cpuRun.SessionLosses[i], fullRun.SessionLosses[i], Tolerance.Loss));
            var saved = LoraAdapter.Load(fullRun.FinalWeights!, c);
            // What the trainer saved is what the device trained (downloaded for the save).
            foreach (var (want, got) in fullAdapter.Parameters().Zip(saved.Parameters())) Assert.Equal(want.Data, got.Data);

            // Interrupted after step 2 (checkpoint: weights and moments downloaded), resumed on a fresh model (uploaded):
            // every loss, validation loss and final weight bit-identical to the uninterrupted run.
            string dir = TrainerTestKit.TempDir();
            var (first, firstAdapter) = Make();
            using (first)
            {
                using var cts = new CancellationTokenSource();
                var progress = new TrainerTestKit.SyncProgress(p => { if (p.Event == TrainingEvent.Step && p.Step == 2) cts.Cancel(); });
                Assert.True(new Trainer(first, data, options, dir, firstAdapter.Save, progress).Run(cancel: cts.Token).Interrupted);
            }
            var (second, secondAdapter) = Make(); // fresh weights: the checkpoint must replace them on the device
            TrainingResult resumed;
            using (second) resumed = new Trainer(second, data, options, dir, secondAdapter.Save).Run(resumeFrom: dir);
            Assert.True(resumed.Completed);
            Assert.Equal(TrainerTestKit.LossBits(fullDir), TrainerTestKit.LossBits(dir));
            Assert.Equal(TrainerTestKit.ValLossBits(fullDir), TrainerTestKit.ValLossBits(dir));
            var resumedSaved = LoraAdapter.Load(resumed.FinalWeights!, c);
            foreach (var (want, got) in saved.Parameters().Zip(resumedSaved.Parameters())) Assert.Equal(want.Data, got.Data);
            return $"losses within {worst:0.00}x of tolerance; resume bit-identical";
        });
    }
}
