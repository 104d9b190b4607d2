using System.Runtime.InteropServices;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The values of one training step that change from step to step, in the layout of kernels/prelude.cuh's
/// <c>struct StepParams</c> (40 bytes). The kernels that need them (swiglu_forward/backward: the Trans-PEFT mask;
/// lora_dropout_apply/shrink: the LoRA dropout stream; cross_entropy_fused_*: the loss scale) read them through a
/// device pointer instead of taking them by value, so a captured CUDA graph depends only on the step's shape and the
/// host updates them with one asynchronous copy before each launch or replay. A null pointer means no mask, no
/// dropout and loss scale 1.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = Bytes)]
internal struct StepParams
{
    public const int Bytes = 40;

    public ulong MaskSeed;
    public uint MaskStep, MaskMicroBatch;
    public ulong DropoutSeed;
    public uint DropoutStep, DropoutMicroBatch;
    /// <summary>Trans-PEFT FFN masking probability; 0: no mask (nothing drawn).</summary>
    public float PMask;
    public float LossScale;

    /// <summary>The values of a step with these streams, mask probability and loss scale.</summary>
    public static StepParams For(RandomStream mask, float pMask, RandomStream dropout, float lossScale) => new()
    {
        MaskSeed = mask.Seed, MaskStep = mask.Step, MaskMicroBatch = mask.MicroBatch,
        DropoutSeed = dropout.Seed, DropoutStep = dropout.Step, DropoutMicroBatch = dropout.MicroBatch,
        PMask = pMask, LossScale = lossScale,
    };
}
