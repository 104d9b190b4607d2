using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using TransPeft.Cuda;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Training;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft profile`: N LoRA training steps (a session's TrainingContext: forward, backward, clipping, AdamW) of the
/// CUDA backend between cuProfilerStart and cuProfilerStop, each inside
/// an NVTX range "step i", with the model's own ranges inside (forward/backward, "layer L forward|backward", and per
/// layer "attention" and "mlp"), so `nsys profile --capture-range=cudaProfilerApi` and `ncu --nvtx` see exactly the
/// measured steps. Kernels always carry -lineinfo (KernelCompiler.OptionsFor), so Nsight Compute's source view works.
/// Ready-to-run command lines: docs/PROFILING.md. Decode-token profiling waits for a CUDA inference path.
/// </summary>
internal static class ProfileCommand
{
    public static Command Create()
    {
        var (preset, batch, seq, _, _) = BenchCommand.ShapeOptions();
        var steps = new Option<int>("--steps") { Description = "Training steps inside the capture range", DefaultValueFactory = _ => 5 };
        var warmup = new Option<int>("--warmup") { Description = "Steps before the capture range (kernel loading, first-touch costs)", DefaultValueFactory = _ => 2 };
        var rank = new Option<int>("--lora-r") { Description = "LoRA rank (adapter on every linear layer)", DefaultValueFactory = _ => 8 };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("profile",
            "Run LoRA training steps on the CUDA backend between cuProfilerStart/Stop with NVTX ranges per step, layer and op, for Nsight Systems and "
            + "Nsight Compute (command lines in docs/PROFILING.md).\nExample: nsys profile --capture-range=cudaProfilerApi tpeft profile --preset small --batch 4 --seq 512")
            { preset, batch, seq, steps, warmup, rank, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            int b = p.GetValue(batch), t = p.GetValue(seq), n = p.GetValue(steps), w = p.GetValue(warmup), r = p.GetValue(rank);
            if (b <= 0 || t < 2 || n <= 0 || w < 0 || r <= 0)
                throw new ArgumentException($"--batch, --steps and --lora-r must be positive, --seq at least 2 and --warmup at least 0; got {b}, {n}, {r}, {t}, {w}");
            string presetName = p.GetValue(preset)!;
            var config = ModelPresets.Get(presetName);
            var options = DeviceChoice.ForCommand(p, device);
            using var session = DeviceChoice.Open(() => InferenceSession.FromModel(TransformerModel.CreateRandom(config, 1), options), options);
            if (!session.IsCuda)
                throw new InvalidOperationException($"profile: the CPU has no Nsight capture range; run with --device cuda[:N] (or cuda-emulated to try the command without a GPU){(session.DeviceFallbackReason is { } why ? $" ({why})" : "")}");
            bool emulated = session.DeviceDescription == "cuda-emulated";

            var adapter = LoraAdapter.Create(config, new LoraConfig { R = r, Alpha = 2 * r, TargetModules = ["all-linear"] }, 1);
            // B starts at zero as in a fresh run; the kernels and GEMMs launched are the same as mid-training.
            var rng = new Random(2);
            var batchData = TokenBatch.FromIds(b, t, Enumerable.Range(0, b * t).Select(_ => rng.Next(config.VocabSize)).ToArray());
            using var training = session.CreateTrainingContext(adapter);
            var names = Enumerable.Range(0, n).Select(i => $"step {i}").ToArray();

            for (int i = 0; i < w; i++) training.Step(batchData);
            // The capture range is the device's primary context, the one the session's backend uses (a step ends with
            // a download of the loss, so the work before it has finished).
            using var gpu = emulated ? null : CudaContext.Open(DeviceSpec.Parse(options.Device).Ordinal);
            gpu?.ProfilerStart();
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < n; i++)
            {
                Nvtx.Push(names[i]);
                training.Step(batchData);
                Nvtx.Pop();
            }
            clock.Stop();
            gpu?.ProfilerStop();

            double msPerStep = clock.Elapsed.TotalMilliseconds / n;
            if (p.GetValue(json))
            {
                JsonOutput.Write(new JsonObject
                {
                    ["device"] = session.DeviceDescription, ["preset"] = presetName, ["batch"] = b, ["seq"] = t, ["lora_r"] = r,
                    ["warmup_steps"] = w, ["profiled_steps"] = n, ["ms_per_step"] = msPerStep, ["tokens_per_s"] = b * t / (msPerStep / 1000),
                    ["capture_range"] = emulated ? "none (cuda-emulated has no profiler)" : "cuProfilerStart/cuProfilerStop",
                });
            }
            else
            {
                Console.Out.WriteLine($"profiled {n} LoRA steps ({presetName}, batch {b} x seq {t}, r {r}) on {session.DeviceDescription}: {msPerStep:F1} ms/step, {b * t / (msPerStep / 1000):F0} tokens/s");
                Console.Out.WriteLine(emulated
                    ? "cuda-emulated: NVTX ranges and the capture range are no-ops here; run on a GPU under nsys/ncu (docs/PROFILING.md)"
                    : "capture range: cuProfilerStart..cuProfilerStop around the steps; NVTX: \"step i\" > forward|backward > \"layer L forward|backward\" > attention|mlp");
            }
            return 0;
        }));
        return cmd;
    }
}
