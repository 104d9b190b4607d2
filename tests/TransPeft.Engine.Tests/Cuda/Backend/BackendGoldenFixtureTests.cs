using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The golden fixtures (libtorch float64 autograd on fp32 weights, see Fixtures/README.md) through the CUDA
/// backend: logits, losses, every gradient of full fine-tuning, LoRA and Trans-PEFT (explicit masks and drops), and
/// greedy decoding. The backend stores the weights in bf16, so the tolerances are bf16 ones
/// (<see cref="ParityTolerance.Bf16"/>) on every device, the emulator's exact mode included (its activations are
/// exact, its weights are not).
/// </summary>
public abstract class BackendGoldenFixtureTests
{
    public static IEnumerable<object[]> Fixtures => GoldenFixture.Names();

    internal abstract IComputeDevice NewDevice();

    protected virtual bool IsGpu => false;

    private static readonly ParityTolerance Tol = ParityTolerance.Bf16;

    private static float[] F(double[] v) => Array.ConvertAll(v, x => (float)x);

    private void Report(string name, Func<string> check) => ParityReport.Run(IsGpu, name, check);

    [SkippableTheory, MemberData(nameof(Fixtures))]
    public void LogitsAndLossesMatch(string name)
    {
        Report($"golden {name}: logits and losses", () =>
        {
            using var f = new GoldenFixture(name);
            double worstLogits = 0, worstLoss = 0;
            foreach (var (key, adapter, loss) in new[] { ("logits_base", (LoraAdapter?)null, "loss_base"), ("logits_lora", f.LoadAdapter(), "loss_lora") })
            {
                using var m = CudaTransformer.ForInference(NewDevice(), f.Model, adapter, ownsDevice: true);
                worstLogits = Math.Max(worstLogits, ParityCheck.Logits(key, F(f.Expected.ReadFloat64(key)), m.ForwardLogits(f.Ids, f.B, f.T), Tol));
                var (sum, count) = m.Loss(f.Batch);
                Assert.Equal(f.Batch.CountedTargets(), count);
                worstLoss = Math.Max(worstLoss, ParityCheck.Relative(loss, f.ExpectedScalar(loss), sum / count, Tol.Loss));
            }
            return $"logits {worstLogits:0.00}x, losses {worstLoss:0.00}x of tolerance";
        });
    }

    [SkippableTheory, MemberData(nameof(Fixtures))]
    public void FullFineTuneGradientsMatchEveryTensor(string name)
    {
        Report($"golden {name}: full fine-tune gradients", () =>
        {
            using var f = new GoldenFixture(name);
            using var m = new CudaTransformer(NewDevice(), f.Model, fullFineTune: true, ownsDevice: true);
            int counted = f.Batch.CountedTargets();
            m.ZeroGrad();
            var (sum, _) = m.ForwardBackward(f.Batch, 1f / counted, new StepContext(default, null, true));
            ParityCheck.Relative("loss_base", f.ExpectedScalar("loss_base"), sum / counted, Tol.Loss);
            double worst = 0;
            int tensors = 0;
            foreach (var p in f.Model.Parameters())
            {
                worst = Math.Max(worst, ParityCheck.Gradient("grad." + p.Name, F(f.Expected.ReadFloat64("grad." + p.Name)), p.Grad, Tol));
                tensors++;
            }
            Assert.Equal(f.Expected.Names.Count(n => n.StartsWith("grad.model.", StringComparison.Ordinal) || n == "grad.lm_head.weight"), tensors);
            return $"{tensors} tensors, worst {worst:0.00}x of tolerance";
        });
    }

    [SkippableTheory, MemberData(nameof(Fixtures))]
    public void LoraAndTransPeftGradientsMatch(string name)
    {
        Report($"golden {name}: LoRA and Trans-PEFT gradients", () =>
        {
            using var f = new GoldenFixture(name);
            double worst = 0;
            foreach (var (prefix, perturbation, loss) in new[] { ("grad.", (global::TransPeft.Engine.TransPeft.FfnPerturbation?)null, "loss_lora"), ("grad_transpeft.", f.Perturbation, "loss_transpeft") })
            {
                var adapter = f.LoadAdapter();
                using var m = new CudaTransformer(NewDevice(), f.Model, adapter, ownsDevice: true);
                int counted = f.Batch.CountedTargets();
                m.ZeroGrad();
                var (sum, _) = m.ForwardBackward(f.Batch, 1f / counted, new StepContext(default, perturbation, true));
                ParityCheck.Relative(loss, f.ExpectedScalar(loss), sum / counted, Tol.Loss);
                foreach (var p in adapter.Parameters())
                    worst = Math.Max(worst, ParityCheck.Gradient(prefix + p.Name, F(f.Expected.ReadFloat64(prefix + p.Name)), p.Grad, Tol));
                Assert.All(f.Model.Parameters(), p => Assert.Null(p.Grad));
                if (perturbation is not null)
                {
                    foreach (var mod in adapter.Modules().Where(x => f.Dropped[x.Layer] && x.Projection.IsFfn()))
                    {
                        Assert.All(mod.A.Grad!, g => Assert.Equal(0f, g));
                        Assert.All(mod.B.Grad!, g => Assert.Equal(0f, g));
                    }
                    ParityCheck.Logits("logits_transpeft", F(f.Expected.ReadFloat64("logits_transpeft")), m.ForwardLogits(f.Ids, f.B, f.T, perturbation), Tol);
                }
            }
            return $"worst {worst:0.00}x of tolerance";
        });
    }

    /// <summary>
    /// Greedy decoding, teacher-forced on the fixture's tokens so one near-tie cannot derail the rest. Sound rule: if
    /// every logit is within τ of the truth (τ is the logit tolerance the other tests enforce), then where the true
    /// top-1/top-2 gap exceeds 2τ the argmax must be exactly the fixture's token, and elsewhere the fixture's token
    /// must score within 2τ of the backend's top logit. The true gap of each step comes from the fp32 CPU reference
    /// on the same sequence (whose error is ~1e-5, and whose argmax the CPU golden tests pin to the fixture's token).
    /// </summary>
    [SkippableTheory, MemberData(nameof(Fixtures))]
    public void GreedyTokensMatchWhereTheGapAllowsAndAreNearTopOtherwise(string name)
    {
        Report($"golden {name}: greedy tokens", () =>
        {
            using var f = new GoldenFixture(name);
            int exact = 0, total = 0;
            foreach (var (key, adapter) in new[] { ("base", (LoraAdapter?)null), ("lora", f.LoadAdapter()) })
            {
                using var m = CudaTransformer.ForInference(NewDevice(), f.Model, adapter, ownsDevice: true);
                var cpu = CpuTransformer.ForInference(f.Model, adapter);
                var seq = f.Expected.ReadInt64("greedy_prompt").Select(x => (int)x).ToList();
                var want = f.Expected.ReadInt64("greedy_" + key).Select(x => (int)x).ToArray();
                int v = f.Model.Config.VocabSize;
                foreach (var token in want)
                {
                    var last = m.ForwardLogits(seq.ToArray(), 1, seq.Count).AsSpan((seq.Count - 1) * v, v);
                    var truth = cpu.ForwardLogits(seq.ToArray(), 1, seq.Count).AsSpan((seq.Count - 1) * v, v);
                    if (ParityCheck.GreedyStep($"greedy_{key} step {total}", truth, last, token, Tol)) exact++;
                    seq.Add(token);
                    total++;
                }
            }
            return $"{total} tokens, {exact} of them with a gap that demands the exact token";
        });
    }

    /// <summary>
    /// The same greedy decoding through the KV-cached decoder (<see cref="CudaKvDecoder"/>: prefill into a device
    /// cache slot, then one decode step per token, the adapter from the device pool): at every step the logits are
    /// within the bf16 tolerance of the CPU's on the same sequence, and the token obeys the gap rule above.
    /// </summary>
    [SkippableTheory, MemberData(nameof(Fixtures))]
    public void KvCachedDecodingMatchesTheCpuAtEveryStep(string name)
    {
        Report($"golden {name}: KV-cached decoding", () =>
        {
            using var f = new GoldenFixture(name);
            int exact = 0, total = 0;
            var prompt = f.Expected.ReadInt64("greedy_prompt").Select(x => (int)x).ToArray();
            int v = f.Model.Config.VocabSize;
            using var decoder = new CudaKvDecoder(NewDevice(), f.Model, new CudaKvOptions(Slots: 2, Capacity: Math.Min(64, f.Model.Config.MaxPositionEmbeddings), AdapterSlots: 2), ownsDevice: true);
            foreach (var (key, adapter) in new[] { ("base", (LoraAdapter?)null), ("lora", f.LoadAdapter()) })
            {
                var gpu = new CudaKvInference(decoder, adapter);
                var cpu = CpuTransformer.ForInference(f.Model, adapter);
                var want = f.Expected.ReadInt64("greedy_" + key).Select(x => (int)x).ToArray();
                using var cache = gpu.CreateCache(1, prompt.Length + want.Length);
                var logits = new float[v];
                gpu.Prefill(cache, prompt, 1, prompt.Length, logits);
                var seq = prompt.ToList();
                foreach (var token in want)
                {
                    var truth = cpu.ForwardLogits(seq.ToArray(), 1, seq.Count).AsSpan((seq.Count - 1) * v, v);
                    ParityCheck.Logits($"kv greedy_{key} step {total} logits", truth, logits, Tol);
                    if (ParityCheck.GreedyStep($"kv greedy_{key} step {total}", truth, logits, token, Tol)) exact++;
                    gpu.Decode(cache, [token], logits);
                    seq.Add(token);
                    total++;
                }
            }
            return $"{total} tokens, {exact} of them with a gap that demands the exact token";
        });
    }
}
