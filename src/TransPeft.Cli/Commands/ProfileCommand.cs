using System.CommandLine;
using System.Text.Json.Nodes;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Model;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft profile`: N LoRA training steps of the CUDA backend between cuProfilerStart and cuProfilerStop, each inside
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
            using var backend = DeviceChoice.OpenCudaBackend(options, "profile: the CPU has no Nsight capture range");
            double msPerStep = CudaProfiling.ProfileLoraSteps(backend, config, b, t, r, w, n);
            if (p.GetValue(json))
            {
                JsonOutput.Write(new JsonObject
                {
                    ["device"] = (backend.IsEmulated ? "cuda-emulated" : $"cuda:{backend.Context.Ordinal}"), ["preset"] = presetName, ["batch"] = b, ["seq"] = t, ["lora_r"] = r,
                    ["warmup_steps"] = w, ["profiled_steps"] = n, ["ms_per_step"] = msPerStep, ["tokens_per_s"] = b * t / (msPerStep / 1000),
                    ["capture_range"] = backend.IsEmulated ? "none (cuda-emulated has no profiler)" : "cuProfilerStart/cuProfilerStop",
                });
            }
            else
            {
                Console.Out.WriteLine($"profiled {n} LoRA steps ({presetName}, batch {b} x seq {t}, r {r}) on {(backend.IsEmulated ? "cuda-emulated" : $"cuda:{backend.Context.Ordinal}")}: {msPerStep:F1} ms/step, {b * t / (msPerStep / 1000):F0} tokens/s");
                Console.Out.WriteLine(backend.IsEmulated
                    ? "cuda-emulated: NVTX ranges and the capture range are no-ops here; run on a GPU under nsys/ncu (docs/PROFILING.md)"
                    : "capture range: cuProfilerStart..cuProfilerStop around the steps; NVTX: \"step i\" > forward|backward > \"layer L forward|backward\" > attention|mlp");
            }
            return 0;
        }));
        return cmd;
    }
}
