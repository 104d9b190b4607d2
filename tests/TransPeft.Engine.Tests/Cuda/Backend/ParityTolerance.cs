namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>How close a CUDA-backend result must be to the CPU reference: loss (relative), each gradient tensor
/// (max error as a fraction of the tensor's largest element, and L2 error relative to the tensor's L2 norm), logits
/// (absolute part as a fraction of the largest logit, plus a relative part).</summary>
internal sealed record ParityTolerance(double Loss, double GradMax, double GradL2, double LogitAbsFraction, double LogitRel)
{
    /// <summary>
    /// bf16 weights and activations against the fp32 CPU on the same bf16 weights. Measured on the emulated device
    /// (which rounds exactly where the kernels store bf16) with the deliberately hard test models (init std 0.2,
    /// sharp attention): loss within 9e-4, gradients within 5e-2 of their largest element (L2 within 3.3e-2), logits
    /// within 1.5e-2 of the largest logit. About twice that is allowed for the GPU's other summation orders and the
    /// tensor-core attention's bf16 P.
    /// </summary>
    public static ParityTolerance Bf16 { get; } = new(Loss: 1e-2, GradMax: 1e-1, GradL2: 8e-2, LogitAbsFraction: 3e-2, LogitRel: 3e-2);

    /// <summary>The emulator's exact mode (bf16 tensors keep fp32 values): only summation order differs from the CPU,
    /// measured at ~3e-6, so any mistake in the backend's orchestration shows.</summary>
    public static ParityTolerance Exact { get; } = new(Loss: 1e-5, GradMax: 5e-5, GradL2: 5e-5, LogitAbsFraction: 1e-5, LogitRel: 1e-5);
}
