using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Training;

/// <summary>
/// What a forward/backward needs to know beyond the batch: the random stream of this micro-batch
/// (LoRA dropout, Trans-PEFT masks), and the Trans-PEFT perturbation (null = none, as at evaluation).
/// </summary>
internal readonly record struct StepContext(RandomStream Random, FfnPerturbation? Perturbation, bool Training)
{
    public static StepContext Eval => new(default, null, false);
}
