using System.Diagnostics;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// LoRA training steps of the CUDA backend between cuProfilerStart and cuProfilerStop, each inside an NVTX range
/// "step i" with the model's own ranges inside (forward/backward, "layer L forward|backward", attention, mlp), so
/// <c>nsys profile --capture-range=cudaProfilerApi</c> and <c>ncu --nvtx</c> see exactly the measured steps
/// (`tpeft profile`, docs/PROFILING.md). Warm-up steps run before the range: kernel loading and first-touch costs
/// stay out of it.
/// </summary>
public static class CudaProfiling
{
    /// <summary>Runs <paramref name="warmup"/> + <paramref name="steps"/> LoRA steps (adapter of rank
    /// <paramref name="rank"/> on every linear layer, random weights and tokens) on <paramref name="backend"/> and
    /// returns the wall milliseconds per profiled step.</summary>
    public static double ProfileLoraSteps(CudaBackend backend, ModelConfig config, int batch, int seq, int rank, int warmup, int steps)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (batch <= 0 || seq < 2 || steps <= 0 || warmup < 0 || rank <= 0)
            throw new ArgumentException($"batch, steps and rank must be positive, seq at least 2 and warmup at least 0; got batch {batch}, seq {seq}, steps {steps}, rank {rank}, warmup {warmup}");
        var adapter = LoraAdapter.Create(config, new LoraConfig { R = rank, Alpha = 2 * rank, TargetModules = ["all-linear"] }, 1);
        var rng = new Random(2);
        // B starts at zero; give it values so every step does the arithmetic of mid-training.
        foreach (var prm in adapter.Parameters()) for (int i = 0; i < prm.Data.Length; i++) prm.Data[i] = (float)(rng.NextDouble() - 0.5) * 0.02f;
        var batchData = TokenBatch.FromIds(batch, seq, Enumerable.Range(0, batch * seq).Select(_ => rng.Next(config.VocabSize)).ToArray());
        float lossScale = 1f / batchData.CountedTargets();
        using var model = backend.CreateTransformer(TransformerModel.CreateRandom(config, 1), adapter);
        var names = Enumerable.Range(0, steps).Select(i => $"step {i}").ToArray();
        void Step(int i)
        {
            model.ZeroGrad();
            model.ForwardBackward(batchData, lossScale, new StepContext(new RandomStream(1, (uint)i, 0), null, true));
        }

        for (int i = 0; i < warmup; i++) Step(i);
        model.Device.Synchronize();
        if (!backend.IsEmulated) backend.Context.ProfilerStart();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++)
        {
            model.Device.PushRange(names[i]);
            Step(warmup + i);
            model.Device.PopRange();
        }
        model.Device.Synchronize();
        clock.Stop();
        if (!backend.IsEmulated) backend.Context.ProfilerStop();
        return clock.Elapsed.TotalMilliseconds / steps;
    }
}
