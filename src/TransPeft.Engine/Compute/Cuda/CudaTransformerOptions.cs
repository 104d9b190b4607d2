namespace TransPeft.Engine.Compute.Cuda;

/// <summary>How a <see cref="CudaTransformer"/> runs.</summary>
internal sealed record CudaTransformerOptions
{
    /// <summary>
    /// False (default): the host is authoritative, as <see cref="Training.ITrainableModel"/> expects. Every forward
    /// uploads the trainable parameters' <c>Data</c> (the host optimizer may have changed them), and every
    /// <c>ForwardBackward</c> adds its gradients into <c>Parameter.Grad</c>; the existing Trainer and AdamW work
    /// unchanged. True: the device is authoritative: gradients accumulate on the GPU until <c>ZeroGrad</c>, a
    /// <see cref="CudaAdamW"/> updates the fp32 master weights in place, and <c>SyncToHost</c> brings the weights
    /// back into the <see cref="Model.Parameter"/> objects (for saving and checkpoints).
    /// </summary>
    public bool DeviceOptimizer { get; init; }

    /// <summary>
    /// Record each step (zero gradients, forward, loss, backward) as a CUDA graph, keyed by the step's shape and its
    /// Trans-PEFT layer-drop pattern, and replay it for every later step with that key: the per-step values (random
    /// streams, p_mask, loss scale) are read from device memory (<see cref="StepParams"/>). Explicit (host-given)
    /// masks are never captured. Off by default.
    /// </summary>
    public bool CaptureGraphs { get; init; }

    /// <summary>Captured graphs kept (least recently used evicted): one per shape and layer-drop pattern in use.</summary>
    public int MaxGraphs { get; init; } = 8;

    /// <summary>Device memory for one chunk of LM-head logits (fp32-sized); the head runs chunk by chunk.</summary>
    public long HeadChunkBytes { get; init; } = ActivationLayout.DefaultHeadChunkBytes;

    /// <summary>Activation recomputation (<see cref="Training.TrainingOptions.Recompute"/>): the arena holds one layer's
    /// saved tensors, shared by all layers, and the backward reruns each layer's forward from xs[l] before its backward.
    /// The same kernels on the same inputs give the same gradients as the stored path.</summary>
    public bool Recompute { get; init; }

    /// <summary>Longest sequence accepted (0: the config's max_position_embeddings), as CpuTransformer's maxPositions.</summary>
    public int MaxPositions { get; init; }
}
