using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using TransPeft.Cuda;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Training;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft profile`: N LoRA training steps (a session's TrainingContext: forward, backward, clipping, AdamW), or with
/// <c>--decode N</c> N generated tokens after a prompt of <c>--prompt-tokens P</c> (a session's InferenceContext,
/// greedy, the adapter applied), on the CUDA backend between cuProfilerStart and cuProfilerStop. Each step or token
/// is an NVTX range ("step i" / "token i"), with the model's own ranges inside (forward/backward, "layer L
/// forward|backward", and per layer "attention" and "mlp"), so `nsys profile --capture-range=cudaProfilerApi` and
/// `ncu --nvtx` see exactly the measured work: warm-up steps or tokens, the prompt's prefill and the first token run
/// before the range. Decoding goes through the public session API only, so it profiles whatever decode path the
/// session's CUDA backend has. Kernels always carry -lineinfo (KernelCompiler.OptionsFor), so Nsight Compute's
/// source view works. Ready-to-run command lines: docs/PROFILING.md.
/// </summary>
internal static class ProfileCommand
{
    public static Command Create()
    {
        var (preset, batch, seq, _, _) = BenchCommand.ShapeOptions();
        var steps = new Option<int>("--steps") { Description = "Training steps inside the capture range", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Steps (or with --decode, tokens) before the capture range (kernel loading, first-touch costs)", DefaultValueFactory = _ => 2 };
        var rank = new Option<int>("--lora-r") { Description = "LoRA rank (adapter on every linear layer)", DefaultValueFactory = _ => 8 };
        var decode = new Option<int>("--decode") { Description = "Profile N generated tokens (greedy, batch 1) instead of training steps", DefaultValueFactory = _ => 0 };
        var graphs = new Option<bool>("--cuda-graphs") { Description = "Replay each training step (captured once per shape and layer-drop pattern) or, with --decode, each decode step (captured once) as a CUDA graph, during the warm-up; without it every kernel is launched and the per-layer/op NVTX ranges show inside each token" };
        var promptTokens = new Option<int>("--prompt-tokens") { Description = "With --decode: prompt length (prefilled before the capture range)", DefaultValueFactory = _ => 32 };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("profile",
            "Run LoRA training steps (or, with --decode N, N generated tokens) on the CUDA backend between cuProfilerStart/Stop with NVTX ranges per "
            + "step or token, layer and op, for Nsight Systems and Nsight Compute (command lines in docs/PROFILING.md).\n"
            + "Example: nsys profile --capture-range=cudaProfilerApi tpeft profile --preset small --batch 4 --seq 512\n"
            + "         nsys profile --capture-range=cudaProfilerApi tpeft profile --preset small --decode 32 --prompt-tokens 128")
            { preset, batch, seq, steps, warmup, rank, decode, promptTokens, graphs, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(steps), w = p.GetValue(warmup), r = p.GetValue(rank);
            int tokens = p.GetValue(decode), prompt = p.GetValue(promptTokens);
            if (b <= 0 || t < 2 || n <= 0 || w < 0 || r <= 0)
                throw new ArgumentException($"--batch, --steps and --lora-r must be positive, --seq at least 2 and --warmup at least 0; got {b}, {n}, {r}, {t}, {w}");
            if (tokens < 0 || prompt <= 0)
                throw new ArgumentException($"--decode must be at least 0 and --prompt-tokens positive; got {tokens}, {prompt}");
            string presetName = p.GetValue(preset)!;
            var config = ModelPresets.Get(presetName);
            var options = DeviceChoice.ForCommand(p, device) with { CudaGraphs = p.GetValue(graphs) };
            using var session = DeviceChoice.Open(() => InferenceSession.FromModel(TransformerModel.CreateRandom(config, 1), options), options);
            if (!session.IsCuda)
                throw new InvalidOperationException($"profile: the CPU has no Nsight capture range; run with --device cuda[:N] (or cuda-emulated to try the command without a GPU){(session.DeviceFallbackReason is { } why ? $" ({why})" : "")}");
            bool emulated = session.DeviceDescription == "cuda-emulated";
            if (tokens > 0 && prompt + tokens + 1 > session.MaxSequenceLength)
                throw new ArgumentException($"--prompt-tokens {prompt} + --decode {tokens} + 1 (the prefill's token) exceed the model's maximum sequence length {session.MaxSequenceLength}");

            var adapter = LoraAdapter.Create(config, new LoraConfig { R = r, Alpha = 2 * r, TargetModules = ["all-linear"] }, 1);
            // B starts at zero as in a fresh run; the kernels and GEMMs launched are the same as mid-training.
            // The capture range is the device's primary context, the one the session's backend uses (a step and a token
            // both end with a download, so the work before them has finished).
            using var gpu = emulated ? null : CudaContext.Open(DeviceSpec.Parse(options.Device).Ordinal);
            string captureRange = emulated ? "none (cuda-emulated has no profiler)" : "cuProfilerStart/cuProfilerStop";
            if (tokens > 0)
            {
                double msPerToken = ProfileDecode(session, config, adapter, prompt, tokens, w, gpu);
                return Report(p.GetValue(json), emulated, new JsonObject
                    {
                        ["device"] = session.DeviceDescription, ["preset"] = presetName, ["prompt_tokens"] = prompt, ["lora_r"] = r,
                        ["warmup_tokens"] = w, ["profiled_tokens"] = tokens, ["cuda_graphs"] = p.GetValue(graphs), ["ms_per_token"] = msPerToken, ["tokens_per_s"] = 1000 / msPerToken,
                        ["capture_range"] = captureRange,
                    },
                    $"profiled {tokens} decode tokens ({presetName}, prompt {prompt}, LoRA r {r}) on {session.DeviceDescription}: {msPerToken:F1} ms/token, {1000 / msPerToken:F1} tokens/s",
                    p.GetValue(graphs)
                        ? "capture range: cuProfilerStart..cuProfilerStop around the tokens; NVTX: \"token i\" around one graph launch of the decode step; \"prefill\" is outside"
                        : "capture range: cuProfilerStart..cuProfilerStop around the tokens; NVTX: \"token i\" > \"decode\" > attention|mlp per layer; \"prefill\" is outside");
            }

            var rng = new Random(2);
            var batchData = TokenBatch.FromIds(b, t, Enumerable.Range(0, b * t).Select(_ => rng.Next(config.VocabSize)).ToArray());
            using var training = session.CreateTrainingContext(adapter, options: new TrainingStepOptions { CudaGraphs = p.GetValue(graphs) });
            for (int i = 0; i < w; i++) training.Step(batchData);
            double msPerStep = Measure(gpu, "step", n, _ => training.Step(batchData));

            return Report(p.GetValue(json), emulated, new JsonObject
                {
                    ["device"] = session.DeviceDescription, ["preset"] = presetName, ["batch"] = b, ["seq"] = t, ["lora_r"] = r,
                    ["warmup_steps"] = w, ["profiled_steps"] = n, ["ms_per_step"] = msPerStep, ["tokens_per_s"] = b * t / (msPerStep / 1000),
                    ["cuda_graphs"] = p.GetValue(graphs), ["capture_range"] = captureRange,
                },
                $"profiled {n} LoRA steps ({presetName}, batch {b} x seq {t}, r {r}) on {session.DeviceDescription}: {msPerStep:F1} ms/step, {b * t / (msPerStep / 1000):F0} tokens/s",
                "capture range: cuProfilerStart..cuProfilerStop around the steps; NVTX: \"step i\" > forward|backward > \"layer L forward|backward\" > attention|mlp");
        }));
        return cmd;
    }

    /// <summary>The result as JSON, or as a summary line and a line saying what the capture range and NVTX ranges hold.</summary>
    private static int Report(bool json, bool emulated, JsonObject doc, string summary, string ranges)
    {
        if (json)
        {
            JsonOutput.Write(doc);
            return 0;
        }
        Console.Out.WriteLine(summary);
        Console.Out.WriteLine(emulated ? "cuda-emulated: NVTX ranges and the capture range are no-ops here; run on a GPU under nsys/ncu (docs/PROFILING.md)" : ranges);
        return 0;
    }

    /// <summary>Runs <paramref name="work"/>(i) for i &lt; <paramref name="count"/> between cuProfilerStart and cuProfilerStop
    /// (no range without <paramref name="gpu"/>), each inside an NVTX range "<paramref name="what"/> i"; milliseconds per item.</summary>
    private static double Measure(CudaContext? gpu, string what, int count, Action<int> work)
    {
        var names = Enumerable.Range(0, count).Select(i => $"{what} {i}").ToArray(); // made before the range: no allocation inside
        gpu?.ProfilerStart();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < count; i++)
        {
            Nvtx.Push(names[i]);
            work(i);
            Nvtx.Pop();
        }
        clock.Stop();
        gpu?.ProfilerStop();
        return clock.Elapsed.TotalMilliseconds / count;
    }

    /// <summary>
    /// Greedy generation through the session API with the adapter applied: <paramref name="warmup"/> tokens of a first
    /// request (kernel loading, cache allocation), then a second request whose prefill and first token run in an NVTX
    /// range "prefill" outside the capture range and whose next <paramref name="tokens"/> tokens are measured. End of
    /// sequence ids are switched off so every token is generated. Returns milliseconds per token.
    /// </summary>
    private static double ProfileDecode(InferenceSession session, ModelConfig config, LoraAdapter adapter, int promptTokens, int tokens, int warmup, CudaContext? gpu)
    {
        session.Adapters.Add("profile", adapter);
        using var context = session.CreateContext("profile");
        var rng = new Random(3);
        var prompt = Enumerable.Range(0, promptTokens).Select(_ => rng.Next(config.VocabSize)).ToArray();
        var generation = new GenerationOptions { Greedy = true, EosTokenIds = [], MaxNewTokens = tokens + 1 };
        if (warmup > 0) context.Generate(prompt, generation with { MaxNewTokens = warmup });
        // GenerateAsync runs each token on the thread that asks for it (synchronously here): the NVTX ranges nest.
        var stream = context.GenerateAsync(prompt, generation).GetAsyncEnumerator();
        try
        {
            Nvtx.Push("prefill");
            Next(stream);
            Nvtx.Pop();
            return Measure(gpu, "token", tokens, i =>
            {
                if (!Next(stream)) throw new InvalidOperationException($"profile: generation stopped after {i} of {tokens} tokens ({stream.Current.StopReason})");
            });
        }
        finally { stream.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    private static bool Next(IAsyncEnumerator<GeneratedToken> tokens)
    {
        var next = tokens.MoveNextAsync();
        return next.IsCompleted ? next.Result : next.AsTask().GetAwaiter().GetResult();
    }
}
