using TransPeft.Engine.Compute;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Sessions;

/// <summary>
/// A base model loaded once on one device, and the adapters served over it: the one way in for hosts, the CLI
/// and the benchmarks. Shaped like ONNX Runtime's InferenceSession (options fixed at creation), ONNX Runtime
/// GenAI's Model + Adapters (adapters loaded and unloaded by name), and LLamaSharp's LLamaWeights (one copy of
/// the weights shared by many contexts).
/// <para>
/// Threading: the session and its weights are immutable once loaded and may be used from any number of threads.
/// Per-request state (KV cache, working memory, adapter choice, sampling state) lives in an
/// <see cref="InferenceContext"/>: one per concurrent request (or per thread), each used by one thread at a time.
/// <see cref="Adapters"/> is thread-safe; a request keeps the adapter it started with.
/// </para>
/// </summary>
public sealed class InferenceSession : IDisposable
{
    private readonly CudaBackend? _cuda;
    private readonly bool _ownsCuda;
    private readonly Lazy<IInferenceModel> _base;
    private DeviceBaseWeights? _deviceBase; // CUDA: the one device copy of the base every model of the session reads
    private readonly Lazy<CudaKvDecoder>? _decoder;
    private bool _disposed;

    private InferenceSession(TransformerModel model, string? modelPath, TokenizerInfo? tokenizer, SessionOptions options, CudaBackend? cuda, bool ownsCuda, string? fallback)
    {
        Model = model;
        ModelPath = modelPath;
        Tokenizer = tokenizer;
        Options = options;
        _cuda = cuda;
        _ownsCuda = ownsCuda;
        DeviceFallbackReason = fallback;
        int maxModel = model.Config.MaxPositionEmbeddings;
        if (options.MaxSequenceLength > maxModel)
            throw new ArgumentException($"SessionOptions.MaxSequenceLength: {options.MaxSequenceLength} exceeds the model's max_position_embeddings {maxModel}");
        MaxSequenceLength = options.MaxSequenceLength > 0 ? options.MaxSequenceLength : maxModel;
        Adapters = new AdapterSet(this);
        _base = new Lazy<IInferenceModel>(() => CreateBackend(null));
        if (cuda is not null) _decoder = new Lazy<CudaKvDecoder>(CreateDecoder);
    }

    /// <summary>
    /// Loads config.json, the weights and (when present) the tokenizer from a model folder or a Hugging Face cache
    /// entry (see <see cref="ModelLocation"/>), and starts the device <paramref name="options"/> names.
    /// </summary>
    /// <param name="tokenizer">A tokenizer to use instead of the folder's (null: the folder's, when it has one).</param>
    public static InferenceSession Load(string path, SessionOptions? options = null, TokenizerInfo? tokenizer = null)
    {
        options ??= new SessionOptions();
        options.Validate();
        string dir = ModelLocation.Resolve(path);
        // Names, shapes and dtypes are checked now; the values stay in the mapped files until the device is known:
        // the CPU reads them into fp32 (Checked), a GPU gets them in bf16 straight from the mapping.
        var model = TransformerModel.OpenLazy(dir);
        tokenizer ??= TokenizerLoader.HasTokenizer(dir) ? TokenizerLoader.Load(dir) : null;
        return Create(model, dir, tokenizer, options, null);
    }

    /// <summary>A session over weights the host already holds (made by <see cref="TransformerModel.CreateRandom"/>, trained, ...).</summary>
    public static InferenceSession FromModel(TransformerModel model, SessionOptions? options = null, TokenizerInfo? tokenizer = null)
    {
        options ??= new SessionOptions();
        options.Validate();
        return Create(model, null, tokenizer, options, null);
    }

    /// <summary>A session on a CUDA backend the host started and owns (several sessions may share it).</summary>
    public static InferenceSession FromModel(TransformerModel model, CudaBackend cuda, SessionOptions? options = null, TokenizerInfo? tokenizer = null)
    {
        options = (options ?? new SessionOptions()) with { Device = cuda.IsEmulated ? "cuda-emulated" : $"cuda:{cuda.Context.Ordinal}" };
        options.Validate();
        return Create(model, null, tokenizer, options, cuda);
    }

    private static InferenceSession Create(TransformerModel model, string? dir, TokenizerInfo? tokenizer, SessionOptions options, CudaBackend? given)
    {
        var spec = DeviceSpec.Parse(options.Device);
        if (given is not null) return Checked(new InferenceSession(model, dir, tokenizer, options, given, ownsCuda: false, null));
        switch (spec.Kind)
        {
            case DeviceKind.Cpu:
                return Checked(new InferenceSession(model, dir, tokenizer, options, null, false, null));
            case DeviceKind.CudaEmulated:
            {
                // The unchanged CUDA backend on kernels/*.cu compiled for the host (built outside the engine, e.g. by
                // TransPeft.KernelEmulation); the engine only loads the library.
                if (options.EmulatorLibrary is null)
                    throw new DeviceUnavailableException(spec.ToString(), "set SessionOptions.EmulatorLibrary to the host-compiled kernel library");
                if (!CudaBackend.TryCreateEmulated(options.EmulatorLibrary, out var emulated, out var reason))
                    throw new DeviceUnavailableException(spec.ToString(), reason);
                return Checked(new InferenceSession(model, dir, tokenizer, options, emulated, ownsCuda: true, null));
            }
            default:
                var compiler = options.KernelCacheDir is { } cacheDir ? new global::TransPeft.Cuda.Compile.KernelCompiler(cacheDir) : null;
                if (CudaBackend.TryCreate(spec.Ordinal, out var cuda, out var why, compiler))
                    return Checked(new InferenceSession(model, dir, tokenizer, options, cuda, ownsCuda: true, null));
                if (spec.Kind == DeviceKind.Auto) return Checked(new InferenceSession(model, dir, tokenizer, options, null, false, why));
                throw new DeviceUnavailableException(spec.ToString(), why);
        }
    }

    private static InferenceSession Checked(InferenceSession s)
    {
        if (s.Options.DType == SessionDType.BFloat16 && s._cuda is null)
        { s.Dispose(); throw new NotSupportedException("SessionOptions.DType BFloat16: the CPU backend computes in fp32; use Auto or Float32, or a CUDA device"); }
        if (s.Options.DType == SessionDType.Float32 && s._cuda is not null)
        { s.Dispose(); throw new NotSupportedException("SessionOptions.DType Float32: the CUDA backend computes in bf16; use Auto or BFloat16, or the CPU device"); }
        if (s.Options.AdapterPrecision == AdapterPrecision.Float32 && s._cuda is not null)
        { s.Dispose(); throw new NotSupportedException("SessionOptions.AdapterPrecision Float32: the CUDA adapter pool holds bf16; use Auto or BFloat16, or the CPU device"); }
        try
        {
            // The weights go where the session computes, once, checked against MaxMemoryBytes first: fp32 on the CPU;
            // bf16 on a GPU, shared by every model object of the session (the host keeps no fp32 copy).
            if (s._cuda is null) s.Model.Materialise(s.Options.MaxMemoryBytes);
            else s._deviceBase = s._cuda.UploadBase(s.Model, s.Options.MaxMemoryBytes);
        }
        catch
        {
            s.Dispose();
            throw;
        }
        return s;
    }

    /// <summary>
    /// The base model's weights on the host. On a CUDA session loaded from a folder they are lazy: the device got them
    /// in bf16 straight from the memory-mapped files, and a tensor's fp32 values are read (and take host memory)
    /// only when something asks for them (saving, merging, a CPU model over the same weights).
    /// </summary>
    public TransformerModel Model { get; }
    public ModelConfig Config => Model.Config;
    /// <summary>The folder the weights came from (the snapshot folder for a Hugging Face cache entry); null for <see cref="FromModel(TransformerModel, SessionOptions?, TokenizerInfo?)"/>.</summary>
    public string? ModelPath { get; }
    /// <summary>The model folder's tokenizer; null when it has none (token ids still work everywhere).</summary>
    public TokenizerInfo? Tokenizer { get; }
    /// <summary>Where generation stops by default: config.json's EOS ids, plus the tokenizer's EOS when it has another.</summary>
    public IReadOnlyList<int> EosTokenIds => _eos ??= Tokenizer?.EosTokenId is { } te && !Config.EosTokenIds.Contains(te)
        ? [.. Config.EosTokenIds, te] : [.. Config.EosTokenIds];
    private int[]? _eos;
    public SessionOptions Options { get; }
    public AdapterSet Adapters { get; }
    /// <summary>Most positions a sequence may reach in this session.</summary>
    public int MaxSequenceLength { get; }
    public bool IsCuda => _cuda is not null;
    /// <summary>Under device "auto", why the session runs on the CPU (null otherwise).</summary>
    public string? DeviceFallbackReason { get; }
    /// <summary>"cpu", "cuda:0", or "cpu (auto: ...)".</summary>
    public string DeviceDescription => _cuda is not null ? (_cuda.IsEmulated ? "cuda-emulated" : $"cuda:{_cuda.Context.Ordinal}") : DeviceFallbackReason is null ? "cpu" : $"cpu (auto: {DeviceFallbackReason})";
    /// <summary>The session's shared device base (tests); null on the CPU.</summary>
    internal DeviceBaseWeights? DeviceBase => _deviceBase;

    /// <summary>The CUDA backend's one-line description (GPU, architecture, versions); null on the CPU.</summary>
    public string? CudaDescription => _cuda?.Description;

    /// <summary>A context for one request at a time: <paramref name="adapter"/> names a loaded adapter, or null for the base model.</summary>
    public InferenceContext CreateContext(string? adapter = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (adapter is not null) Adapters.Resolve(adapter);
        return new InferenceContext(this, adapter);
    }

    /// <summary>The backend model of the base or a loaded adapter.</summary>
    internal IInferenceModel BackendFor(string? adapter) => adapter is null ? _base.Value : Adapters.Resolve(adapter).Backend;

    internal IInferenceModel CreateBackend(LoraAdapter? adapter)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_decoder is null) return CpuTransformer.ForInference(Model, adapter, MaxSequenceLength);
        return new CudaKvInference(_decoder.Value, adapter);
    }

    /// <summary>The CUDA session's one KV-cached decoder: the base weights once on the device, a KV slot per sequence
    /// (<see cref="SessionOptions.MaxBatchSize"/> slots of <see cref="MaxSequenceLength"/> positions), the adapters in a
    /// device pool of <see cref="SessionOptions.MaxResidentAdapters"/> slots.</summary>
    private CudaKvDecoder CreateDecoder()
    {
        // The base-only inference model is the decoder's weight store (its Weight accessor); adapters never upload a base.
        var weights = _cuda!.CreateInference(Model, null, new CudaTransformerOptions { MaxPositions = MaxSequenceLength }, _deviceBase);
        try
        {
            return new CudaKvDecoder(weights, new CudaKvOptions(Options.MaxBatchSize, MaxSequenceLength, Options.MaxResidentAdapters, Options.MaxMemoryBytes, Options.CudaGraphs));
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>The CUDA decoder (tests: graphs, pool, slots); null on the CPU.</summary>
    internal CudaKvDecoder? CudaDecoder => _decoder?.Value;

    /// <summary>An unloaded adapter: on CUDA its device slot and pinned image are freed now (a request still using it
    /// brings it back); otherwise nothing of it is kept, so its weights, backend and CPU image go with the last request
    /// that uses them.</summary>
    internal void Retire(AdapterEntry entry)
    {
        if (_decoder is { IsValueCreated: true }) _decoder.Value.Forget(entry.Adapter);
    }

    /// <summary>
    /// CUDA: brings the adapter into the device pool now and returns how long that took. CPU: builds the adapter's
    /// <see cref="CpuLoraImage"/> now when a <see cref="BatchedGenerator"/> serves this session (so the load time includes
    /// it; otherwise the first batched step builds it); returns null.
    /// </summary>
    internal TimeSpan? Preload(AdapterEntry entry)
    {
        if (_decoder is not null) return _decoder.Value.Preload(entry.Adapter);
        if (_servesBatches) BuildCpuImage(entry);
        return null;
    }

    /// <summary>A served adapter's weights were replaced in place (same shape): the device copy (CUDA) is refreshed
    /// before its next step; the CPU image is refreshed now (the caller holds every step out).</summary>
    internal void Swapped(AdapterEntry entry)
    {
        if (_decoder is { IsValueCreated: true }) _decoder.Value.Invalidate(entry.Adapter);
        entry.RefreshCpuImage();
    }

    private volatile bool _servesBatches;

    /// <summary>A CPU <see cref="BatchedGenerator"/> serves this session: the adapters already served get their image now,
    /// and from now on every adapter gets it when loaded (not in the first batched step).</summary>
    internal void ServesBatches()
    {
        _servesBatches = true;
        foreach (var name in Adapters.Names)
            if (Adapters.TryResolve(name) is { } entry) BuildCpuImage(entry);
    }

    /// <summary>Builds an entry's CPU image under the swap gate, so an in-place swap of the same name cannot copy weights
    /// into the adapter while the image reads them (steps and swaps hold that gate too).</summary>
    private void BuildCpuImage(AdapterEntry entry)
    {
        lock (Adapters.SwapGate) _ = entry.CpuImage;
    }

    /// <summary>An adapter's image for the CPU's batched decoder, in the session's adapter precision.</summary>
    internal CpuLoraImage CreateCpuImage(LoraAdapter adapter) => CpuLoraImage.Build(adapter, Options.AdapterPrecision == AdapterPrecision.BFloat16);

    /// <summary>
    /// The adapter as this session serves it: with <see cref="AdapterPrecision.BFloat16"/>, rounded to bf16 (in place when
    /// <paramref name="owned"/>, the session having read it from files; else a rounded copy, leaving the caller's adapter as
    /// it was); otherwise <paramref name="adapter"/> itself.
    /// </summary>
    internal LoraAdapter ForServing(LoraAdapter adapter, bool owned)
    {
        if (Options.AdapterPrecision != AdapterPrecision.BFloat16) return adapter;
        var served = owned ? adapter : adapter.Clone();
        served.RoundToBf16();
        return served;
    }

    /// <summary>After an in-place swap copied new weights into a served adapter: the same rounding as <see cref="ForServing"/>.</summary>
    internal void RoundServed(LoraAdapter served)
    {
        if (Options.AdapterPrecision == AdapterPrecision.BFloat16) served.RoundToBf16();
    }

    /// <summary>The loss of a model (or an adapter) on a data file; see <see cref="InferenceContext.ScoreFile"/>.</summary>
    public DatasetScore ScoreFile(string path, DatasetFormat format = DatasetFormat.Auto, int batchSize = 8, string? adapter = null)
    {
        using var ctx = CreateContext(adapter);
        return ctx.ScoreFile(path, format, batchSize);
    }

    /// <summary>
    /// Trains on this session's weights and device (<see cref="TrainingRun"/>'s pipeline: data, trainer, checkpoints).
    /// LoRA training leaves the session's weights untouched (their gradient state included), so the session can
    /// keep serving while it trains; full fine-tuning trains a copy. <c>options.Model</c> defaults to the session's folder.
    /// </summary>
    public TrainingResult Train(TrainingOptions options, IProgress<TrainingProgress>? progress = null, string? resumeFrom = null,
        CancellationToken cancel = default, Action<string>? log = null, bool overwrite = false)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string modelDir = options.Model ?? ModelPath
            ?? throw new TrainingConfigException("training options", "model", "a model folder (the session was made from memory, and checkpoints record the base folder)");
        options = options with { Model = modelDir };
        var tok = options.Tokenizer is not null ? TokenizerLoader.Load(options.Tokenizer) : Tokenizer;
        var weights = options.Method == TrainingMethod.Full ? Model.Clone() : Model;
        using var _ = CpuParallel.Use(Options.Threads);
        return TrainingRun.Execute(options, weights, modelDir, tok, progress, resumeFrom, cancel, log, _cuda, overwrite,
            options.Method == TrainingMethod.Full ? null : _deviceBase);
    }

    /// <summary>
    /// A step-by-step trainer on this session's device: LoRA with <paramref name="adapter"/> (base frozen and shared),
    /// or full fine-tuning of a copy of the weights when <paramref name="adapter"/> is null and
    /// <paramref name="fullFineTune"/> is set.
    /// </summary>
    public TrainingContext CreateTrainingContext(LoraAdapter? adapter, bool fullFineTune = false, TrainingStepOptions? options = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (adapter is null == !fullFineTune)
            throw new ArgumentException(fullFineTune ? "full fine-tuning trains the base weights: pass no adapter" : "LoRA training needs an adapter (or set fullFineTune)");
        ModelRules.CheckAdapter(Config, adapter);
        var weights = fullFineTune ? Model.Clone() : Model;
        int maxPositions = MaxSequenceLength;
        options ??= new TrainingStepOptions();
        ITrainableModel model = _cuda is null
            ? new CpuTransformer(weights, adapter, fullFineTune, maxPositions, options.Recompute)
            : _cuda.CreateTransformer(weights, adapter, fullFineTune, new CudaTransformerOptions { MaxPositions = maxPositions, Recompute = options.Recompute, CaptureGraphs = options.CudaGraphs },
                fullFineTune ? null : _deviceBase); // LoRA reads the session's frozen base; full fine-tuning trains its own copy
        return new TrainingContext(model, weights, adapter, options, Options.Threads);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // The session's reference; a training context still running keeps the base alive until it is disposed.
        _deviceBase?.Release();
        if (_decoder is { IsValueCreated: true }) _decoder.Value.Dispose();
        if (_ownsCuda) _cuda?.Dispose();
    }
}
