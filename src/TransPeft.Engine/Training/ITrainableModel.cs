using TransPeft.Engine.Model;

namespace TransPeft.Engine.Training;

/// <summary>
/// The contract between the trainer and a backend: run one micro-batch forward and backward and
/// accumulate gradients. Implemented by the CPU reference and the CUDA backend alike.
/// </summary>
internal interface ITrainableModel
{
    /// <summary>The parameters the optimizer updates (LoRA A/B, or every base weight for full fine-tuning).</summary>
    IReadOnlyList<Parameter> TrainableParameters { get; }

    /// <summary>
    /// Forward and backward of one micro-batch. Adds lossScale * d(sum of per-target CE)/dθ into each
    /// trainable parameter's Grad (so lossScale = 1 / counted targets of the whole accumulated batch gives
    /// the global-mean loss's gradient). Returns the sum of CE over counted targets and their number.
    /// </summary>
    (double LossSum, int Counted) ForwardBackward(TokenBatch batch, float lossScale, in StepContext context);

    /// <summary>Forward only: sum of CE over counted targets and their number (no gradients, no perturbation).</summary>
    (double LossSum, int Counted) Loss(TokenBatch batch);

    void ZeroGrad();
}

/// <summary>
/// A model that runs its own optimizer (the CUDA backend's on-device AdamW): the trainer then takes it instead of a
/// host one, and never needs the gradients on the host.
/// </summary>
internal interface IOptimizerHost
{
    /// <summary>The model's own optimizer for these options, or null when the trainer should use a host optimizer.
    /// The model owns it (and frees it when disposed).</summary>
    Optimizer? CreateOptimizer(TrainingOptions options);
}
