namespace TransPeft.Engine.Sessions;

/// <summary>Number format of the weights and activations a session computes in.</summary>
public enum SessionDType
{
    /// <summary>The device's own: fp32 on the CPU, bf16 (fp32 accumulation) on CUDA.</summary>
    Auto,
    /// <summary>fp32 throughout (the CPU backend).</summary>
    Float32,
    /// <summary>bf16 weights and activations with fp32 accumulation (the CUDA backend).</summary>
    BFloat16,
}

/// <summary>Number format of the adapter weights a session serves (<see cref="SessionOptions.AdapterPrecision"/>).</summary>
public enum AdapterPrecision
{
    /// <summary>The device's own: Float32 on the CPU; on CUDA the device adapter pool holds bf16 copies of adapters that
    /// stay float32 on the host.</summary>
    Auto,
    /// <summary>float32, the precision adapters are trained in (CPU only: the CUDA adapter pool holds bf16).</summary>
    Float32,
    /// <summary>
    /// bf16: each adapter is rounded to bf16 (nearest even) when it is loaded, added or swapped in, so every path of the
    /// session (batched serving, contexts, scoring) computes with the same rounded values, on either device. On the CPU
    /// the batched decoder then reads 2 bytes per weight instead of 4: a batch of many distinct adapters, where every row
    /// streams its own adapter's weights, streams half the bytes (docs/BENCHMARKS.md). Adapters are small beside the
    /// base (r=16 on every linear layer of a 7B Llama is 0.6% of its parameters); the rounding moves each adapter weight by
    /// at most 2⁻⁹ (0.2%) of itself.
    /// </summary>
    BFloat16,
}

/// <summary>
/// Everything a session decides once, as ONNX Runtime's SessionOptions: where it computes and with how many
/// threads, in which number format, and the largest request it accepts. Nothing here is process-wide: two
/// sessions with different options can run side by side.
/// </summary>
public sealed record SessionOptions
{
    /// <summary>
    /// "cpu", "cuda" or "cuda:N" (GPU N), "auto" (the first GPU when the CUDA backend can start, else the CPU), or
    /// "cuda-emulated" (the CUDA backend's code on kernels compiled for the host; needs <see cref="EmulatorLibrary"/>).
    /// </summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// For "cuda-emulated": the path of the shared library holding kernels/*.cu compiled for the host. The engine
    /// starts no process, so building that library (g++) is the host's or the tool's job; the engine only loads it.
    /// </summary>
    public string? EmulatorLibrary { get; init; }

    /// <summary>Folder for compiled CUDA kernels (cubin cache); null: the CUDA layer's default.</summary>
    public string? KernelCacheDir { get; init; }

    /// <summary>CPU threads for this session's calls; 0 keeps the calling thread's budget (an enclosing
    /// <see cref="Compute.CpuThreads.Use"/> scope's count, else every core).</summary>
    public int Threads { get; init; }

    public SessionDType DType { get; init; } = SessionDType.Auto;

    /// <summary>Number format of the served adapters' weights (see <see cref="Sessions.AdapterPrecision"/>): Auto keeps
    /// float32 on the CPU; BFloat16 rounds each adapter weight (by at most 0.2%) for half the adapter bytes per step.</summary>
    public AdapterPrecision AdapterPrecision { get; init; } = AdapterPrecision.Auto;

    /// <summary>Most sequences one call may carry (forward, score). On CUDA also the number of device KV cache slots:
    /// sequences (contexts, batched requests) that hold a cache on the device at once.</summary>
    public int MaxBatchSize { get; init; } = 64;

    /// <summary>CUDA: most adapters held on the device at once (the adapter pool's slots). Beyond it the least recently
    /// used adapter that the running batch does not use is evicted to pinned host memory, and re-uploaded (one copy)
    /// when used again. Ignored on the CPU.</summary>
    public int MaxResidentAdapters { get; init; } = 16;

    /// <summary>CUDA: capture the decode step once per batch size as a CUDA graph and replay it for every token (the
    /// default). False launches every kernel of every step: slower, but a profiler then shows the per-layer and per-op
    /// NVTX ranges inside each token (a replayed graph has none). Ignored on the CPU.</summary>
    public bool CudaGraphs { get; init; } = true;

    /// <summary>Most positions one sequence may reach, prompt and generated tokens together (0 = the model's
    /// max_position_embeddings). Smaller values shrink the per-context KV cache and RoPE tables.</summary>
    public int MaxSequenceLength { get; init; }

    /// <summary>Most bytes the session's base weights may take where they are computed on (null: what the process
    /// can use on the CPU, the GPU's own memory on CUDA): fp32 on the host for a CPU session; bf16 on the device for a CUDA session, whose host then holds no
    /// copy (the files are memory-mapped). A model beyond it is refused with a <see cref="Model.MemoryBudgetException"/>
    /// before anything is allocated.</summary>
    public long? MaxMemoryBytes { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the option that is out of range.</summary>
    public void Validate()
    {
        if (Threads < 0) throw new ArgumentException($"SessionOptions.Threads: expected 0 (every core) or a positive count, got {Threads}");
        if (!Enum.IsDefined(DType)) throw new ArgumentException($"SessionOptions.DType: expected Auto, Float32 or BFloat16, got {(int)DType}");
        if (!Enum.IsDefined(AdapterPrecision)) throw new ArgumentException($"SessionOptions.AdapterPrecision: expected Auto, Float32 or BFloat16, got {(int)AdapterPrecision}");
        if (MaxBatchSize <= 0) throw new ArgumentException($"SessionOptions.MaxBatchSize: expected a positive number, got {MaxBatchSize}");
        if (MaxResidentAdapters <= 0) throw new ArgumentException($"SessionOptions.MaxResidentAdapters: expected a positive number, got {MaxResidentAdapters}");
        if (MaxSequenceLength < 0) throw new ArgumentException($"SessionOptions.MaxSequenceLength: expected 0 (the model's maximum) or a positive number, got {MaxSequenceLength}");
        if (MaxMemoryBytes is <= 0) throw new ArgumentException($"SessionOptions.MaxMemoryBytes: expected a positive number of bytes or null, got {MaxMemoryBytes}");
        DeviceSpec.Parse(Device);
    }
}
