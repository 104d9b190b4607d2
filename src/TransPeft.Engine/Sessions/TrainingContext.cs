using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Sessions;

/// <summary>Optimizer settings of a <see cref="TrainingContext"/> step (AdamW, global-norm clipping).</summary>
public sealed record TrainingStepOptions
{
    public double LearningRate { get; init; } = 1e-4;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Epsilon { get; init; } = 1e-8;
    public double WeightDecay { get; init; }
    /// <summary>Gradients are scaled so their global L2 norm is at most this (0 = no clipping).</summary>
    public double MaxGradNorm { get; init; } = 1.0;
    /// <summary>Seeds LoRA dropout (the Philox stream of step s uses (Seed, s)).</summary>
    public int Seed { get; init; }
    /// <summary>Activation recomputation (as <see cref="Training.TrainingOptions.Recompute"/>): one layer's activations
    /// kept instead of all, one more forward per step, the same gradients.</summary>
    public bool Recompute { get; init; }
    /// <summary>CUDA: record each step as a CUDA graph (one per shape and Trans-PEFT layer-drop pattern) and replay it for
    /// later steps, with the same results (as <see cref="Training.TrainingOptions.CudaGraphs"/>); ignored on the CPU.</summary>
    public bool CudaGraphs { get; init; }
}

/// <summary>
/// A training loop's state over a session's weights, for hosts that drive their own steps (the CLI's `train`
/// goes through <see cref="InferenceSession.Train"/>, which adds data loading, schedules and checkpoints).
/// LoRA: the adapter's A/B learn, the session's base weights stay frozen and untouched, so the session keeps
/// serving meanwhile. Full fine-tuning trains a copy of the weights (<see cref="Model"/>). One thread at a time.
/// </summary>
public sealed class TrainingContext : IDisposable
{
    private readonly ITrainableModel _model;
    private readonly Optimizer _optimizer;
    private readonly TrainingStepOptions _options;
    private readonly int _threads;
    private uint _step;

    internal TrainingContext(ITrainableModel model, Model.TransformerModel weights, LoraAdapter? adapter, TrainingStepOptions options, int threads)
    {
        _model = model;
        Model = weights;
        Adapter = adapter;
        _options = options;
        _threads = threads;
        _optimizer = new AdamW(model.TrainableParameters, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
    }

    /// <summary>The weights being trained (the session's for LoRA, a copy for full fine-tuning).</summary>
    public Model.TransformerModel Model { get; }
    /// <summary>The adapter being trained (null for full fine-tuning).</summary>
    public LoraAdapter? Adapter { get; }
    public long TrainableParameterCount => _model.TrainableParameters.Sum(p => (long)p.Length);
    public int StepsTaken => (int)_step;

    /// <summary>One optimizer step on one batch: zero gradients, forward and backward of the mean loss over counted
    /// targets, clip, AdamW update. Returns that mean loss (before the update).</summary>
    public double Step(TokenBatch batch)
    {
        using var _ = CpuParallel.Use(_threads);
        double loss = MeanLossGradients(batch, _step + 1);
        _step++;
        if (_options.MaxGradNorm > 0) GradientClipping.ClipGlobalNorm(_model.TrainableParameters, _options.MaxGradNorm);
        _optimizer.Update(_options.LearningRate);
        return loss;
    }

    /// <summary>Zeroes the gradients and computes those of the mean loss over the batch's counted targets, without
    /// clipping or updating (gradient checks against another implementation). Returns the mean loss.</summary>
    public double ComputeGradients(TokenBatch batch)
    {
        using var _ = CpuParallel.Use(_threads);
        return MeanLossGradients(batch, _step + 1);
    }

    /// <summary>Zeroed gradients, then forward and backward of the mean loss over counted targets, with the random
    /// streams (LoRA dropout, Trans-PEFT) of step <paramref name="step"/>.</summary>
    private double MeanLossGradients(TokenBatch batch, uint step)
    {
        int counted = batch.CountedTargets();
        if (counted == 0) throw new ArgumentException("the batch has no counted target (every label is -100)");
        _model.ZeroGrad();
        var (sum, n) = _model.ForwardBackward(batch, 1f / counted, new StepContext(new RandomStream((ulong)_options.Seed, step, 0), null, true));
        return sum / n;
    }

    /// <summary>The trainable tensors' gradients by Hugging Face / PEFT name, as the last step or
    /// <see cref="ComputeGradients"/> left them (on CUDA, copied back to the host each step).</summary>
    public IEnumerable<(string Name, ReadOnlyMemory<float> Gradient)> Gradients() =>
        _model.TrainableParameters.Select(p => (p.Name, (ReadOnlyMemory<float>)(p.Grad ?? [])));

    /// <summary>Mean loss over the batch's counted targets with the current weights (no update).</summary>
    public double Loss(TokenBatch batch)
    {
        using var _ = CpuParallel.Use(_threads);
        var (sum, n) = _model.Loss(batch);
        return n == 0 ? 0 : sum / n;
    }

    public void Dispose() => (_model as IDisposable)?.Dispose();
}
