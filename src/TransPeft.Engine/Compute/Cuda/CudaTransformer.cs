using System.Numerics.Tensors;
using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The CUDA backend's model: the same math and contract as <see cref="CpuTransformer"/> (see its summary and
/// docs/CUDA-BACKEND.md), in bf16 weights and activations with fp32 accumulation, fp32 master weights and
/// gradients for the trainable parameters. Linear layers, LoRA expand (beta = 1), the LM head and every weight
/// gradient are cuBLAS GEMMs; everything else is an NVRTC kernel (<see cref="CudaOps"/>).
/// <para>
/// Memory: the parameters are uploaded once into one arena (<see cref="ParameterLayout"/>); activations live in
/// a second arena laid out for a number of tokens and reused by every step of at most that many
/// (<see cref="ActivationLayout"/>). A step allocates nothing on the device or the managed heap. It synchronizes
/// with the host only where the contract needs host values: the loss sum at the end, and, in the default
/// host-optimizer mode, the trainable weights going up and their gradients coming back.
/// </para>
/// <para>
/// Trans-PEFT: layer drops are decided on the host (<see cref="FfnPerturbation.IsDropped"/>) and the dropped
/// layer's FFN kernels are not launched. A <see cref="PhiloxFfnPerturbation"/> mask is drawn inside the SwiGLU
/// kernels from the same Philox stream as the CPU; any other perturbation (an <see cref="ExplicitFfnPerturbation"/>)
/// has its mask filled on the host, uploaded per layer and applied with <c>mul_bf16</c> (a mid-step copy: fine for
/// tests and fixtures, never captured in a graph).
/// </para>
/// <para>
/// Per-step values (the mask and dropout streams, p_mask, the loss scale) reach the kernels through one
/// <see cref="StepParams"/> in device memory, written by one asynchronous copy before each step. So with
/// <see cref="CudaTransformerOptions.CaptureGraphs"/> a graph is keyed by the step's shape (and its layer-drop
/// pattern, which decides what is launched): one capture per shape and pattern, replayed for every step.
/// </para>
/// </summary>
internal sealed class CudaTransformer : ITrainableModel, IOptimizerHost, IDisposable
{
    private enum Mode { Train, Eval }

    /// <summary>What a captured step bakes in besides the drop pattern: the shape, and whether LoRA dropout runs (its p
    /// is a kernel argument). Everything that changes per step is read from <see cref="StepParams"/>.</summary>
    private readonly record struct GraphKey(Mode Mode, int B, int T, bool LoraDropout);

    /// <summary>One captured step: its key, the layers it drops (a dropped layer's FFN is not launched), its graph.</summary>
    private sealed class CachedGraph(GraphKey key, bool[] dropped, IDeviceGraph graph)
    {
        public GraphKey Key { get; } = key;
        public bool[] Dropped { get; } = dropped;
        public IDeviceGraph Graph { get; } = graph;
        public long LastUse { get; set; }
    }

    private readonly IComputeDevice _device;
    private readonly bool _ownsDevice;
    private readonly CudaOps _ops;
    private readonly CudaTransformerOptions _options;
    private readonly bool _inferenceOnly;
    private readonly ParameterLayout _params;
    private readonly DevicePtr _paramBase;
    private readonly DeviceBaseWeights? _sharedBase; // the session's one device copy of the frozen base (a reference held)
    private readonly LoraModule?[,] _lora;
    private readonly int[,] _loraRanks;
    private readonly bool _anyLoraDropout;
    private readonly float _eps, _attentionScale;
    private readonly float[] _staging;         // trainable blocks on the host side (padded layout)
    private readonly float[] _lossHost = new float[1];
    private readonly bool[] _dropped;
    private readonly string[] _forwardRange, _backwardRange;

    private ActivationLayout? _acts;
    private DevicePtr _actBase;
    private CudaAdamW? _optimizer; // made by CreateOptimizer, freed with the model
    private int[] _idsHost = [];
    private int[] _targetsHost = [];
    private float[] _maskHost = [];
    private ushort[] _maskBits = [];
    private readonly List<CachedGraph> _graphs = [];
    private long _graphClock;
    private readonly DevicePtr _stepDevice;  // StepParams the kernels read
    private readonly nint _stepHost;         // its pinned host staging copy
    private bool _disposed;

    public TransformerModel Model { get; }
    public LoraAdapter? Adapter { get; }
    public bool FullFineTune { get; }
    public ModelConfig Config => Model.Config;
    public IReadOnlyList<Parameter> TrainableParameters { get; }
    public CudaTransformerOptions Options => _options;
    public int MaxPositions { get; }

    /// <summary>The device this model runs on (tests, benchmarks).</summary>
    internal IComputeDevice Device => _device;
    internal CudaOps Ops => _ops;
    internal ParameterLayout ParameterLayout => _params;
    internal ActivationLayout? ActivationLayout => _acts;

    /// <summary>Number of times the graph of a step was (re)captured, and replayed (tests, benchmarks).</summary>
    internal int GraphCaptures { get; private set; }
    internal int GraphLaunches { get; private set; }

    /// <summary>A forward-only model (evaluation, generation, analysis) that leaves every gradient buffer alone.</summary>
    /// <param name="sharedBase">The session's device copy of <paramref name="model"/>'s base weights: read from there
    /// instead of uploading a copy of its own (a reference is held until Dispose).</param>
    internal static CudaTransformer ForInference(IComputeDevice device, TransformerModel model, LoraAdapter? adapter = null,
        CudaTransformerOptions? options = null, bool ownsDevice = false, DeviceBaseWeights? sharedBase = null) =>
        new(device, model, adapter, fullFineTune: false, options, ownsDevice, manageGradients: false, sharedBase);

    /// <param name="sharedBase">As for <see cref="ForInference"/>; frozen base tensors are read from it (under full
    /// fine-tuning every base tensor is trainable, so none is).</param>
    internal CudaTransformer(IComputeDevice device, TransformerModel model, LoraAdapter? adapter = null, bool fullFineTune = false,
        CudaTransformerOptions? options = null, bool ownsDevice = false, DeviceBaseWeights? sharedBase = null)
        : this(device, model, adapter, fullFineTune, options, ownsDevice, manageGradients: true, sharedBase) { }

    private CudaTransformer(IComputeDevice device, TransformerModel model, LoraAdapter? adapter, bool fullFineTune,
        CudaTransformerOptions? options, bool ownsDevice, bool manageGradients, DeviceBaseWeights? sharedBase)
    {
        if (sharedBase is not null && !ReferenceEquals(sharedBase.Model, model))
            throw new ArgumentException("the shared device base holds another model's weights", nameof(sharedBase));
        var c = model.Config;
        ModelRules.CheckAdapter(c, adapter);
        LaunchPlanner.AttentionFor(c.HeadDim); // throws NotSupportedException for a head_dim no kernel handles
        _device = device;
        _ownsDevice = ownsDevice;
        _options = options ?? new CudaTransformerOptions();
        _ops = new CudaOps(device);
        Model = model;
        Adapter = adapter;
        FullFineTune = fullFineTune;
        MaxPositions = _options.MaxPositions > 0 ? _options.MaxPositions : c.MaxPositionEmbeddings;
        _inferenceOnly = !manageGradients;
        _eps = (float)c.RmsNormEps;
        _attentionScale = 1f / MathF.Sqrt(c.HeadDim); // as Compute/Cpu/Attention.cs computes it in fp32

        TrainableParameters = manageGradients ? ModelRules.TrainableParameters(model, adapter, fullFineTune) : [];

        _lora = new LoraModule?[c.NumLayers, ProjectionNames.All.Length];
        _loraRanks = new int[c.NumLayers, ProjectionNames.All.Length];
        if (adapter is not null)
            foreach (var m in adapter.Modules())
            {
                _lora[m.Layer, (int)m.Projection] = m;
                _loraRanks[m.Layer, (int)m.Projection] = m.Rank;
                _anyLoraDropout |= m.Dropout > 0;
            }
        _dropped = new bool[c.NumLayers];
        _forwardRange = Enumerable.Range(0, c.NumLayers).Select(l => $"layer {l} forward").ToArray();
        _backwardRange = Enumerable.Range(0, c.NumLayers).Select(l => $"layer {l} backward").ToArray();

        var all = model.Parameters().Concat(adapter?.Parameters() ?? []).ToList();
        _sharedBase = sharedBase?.Acquire();
        try
        {
            _params = ParameterLayout.Plan(all, TrainableParameters, c.HeadDim / 2, _sharedBase);
            _staging = new float[_params.TrainableElements];
            _paramBase = device.Allocate(_params.Arena.TotalBytes);
        }
        catch
        {
            _sharedBase?.Release();
            throw;
        }
        try
        {
            _stepDevice = device.Allocate(StepParams.Bytes);
            _stepHost = device.AllocateHost(StepParams.Bytes);
            UploadAllParameters();
        }
        catch
        {
            device.FreeHost(_stepHost);
            device.Free(_stepDevice);
            device.Free(_paramBase);
            _sharedBase?.Release();
            throw;
        }
    }

    // ---------------------------------------------------------------- device addresses

    private DevicePtr P(ArenaRegion r) => _paramBase.OffsetBytes(r.Offset);
    private DevicePtr A(ArenaRegion r) => _actBase.OffsetBytes(r.Offset);

    /// <summary>The bf16 copy of a parameter (what kernels and GEMMs read): in this model's arena, or in the session's
    /// shared base for a frozen base tensor.</summary>
    internal DevicePtr Weight(Parameter p)
    {
        var d = _params[p];
        return d.Shared ? _sharedBase!.Pointer(d.Bf16) : P(d.Bf16);
    }

    /// <summary>The shared device base this model reads its frozen base tensors from (null: all in its own arena).</summary>
    internal DeviceBaseWeights? SharedBase => _sharedBase;

    /// <summary>The fp32 gradient of a trainable parameter, or null for a frozen one (no gradient is computed).</summary>
    internal DevicePtr GradOf(Parameter? p)
    {
        if (p is null) return DevicePtr.Null;
        var d = _params[p];
        return d.Trainable ? P(_params.Grad).OffsetBytes(d.TrainableIndex * 4) : DevicePtr.Null;
    }

    internal DevicePtr MasterOf(Parameter p)
    {
        var d = _params[p];
        return d.Trainable ? P(_params.Master).OffsetBytes(d.TrainableIndex * 4) : DevicePtr.Null;
    }

    internal DevicePtr ParameterPointer(ArenaRegion region) => P(region);

    /// <summary>RoPE's inverse frequencies (fp64 [head_dim / 2]) on the device.</summary>
    internal DevicePtr InvFreq => P(_params.InvFreq);

    // ---------------------------------------------------------------- parameters

    private void UploadAllParameters()
    {
        using (var upload = new Bf16Upload(_device))
            foreach (var d in _params.Parameters)
                if (!d.Trainable && !d.Shared) upload.Upload(P(d.Bf16), d.Host);
        _device.Upload<double>(P(_params.InvFreq), Rope<float>.InverseFrequencies(Config));
        if (_params.TrainableElements > 0)
        {
            _device.Zero(P(_params.Grad), _params.Grad.Bytes);
            UploadTrainables();
        }
        _device.Synchronize();
    }

    /// <summary>Copies every trainable parameter's host Data into the fp32 master block and refreshes the bf16 copies.</summary>
    private void UploadTrainables()
    {
        if (_params.TrainableElements == 0) return;
        foreach (var d in _params.Trainable) d.Host.Data.AsSpan().CopyTo(_staging.AsSpan((int)d.TrainableIndex));
        _device.Upload<float>(P(_params.Master), _staging);
        _ops.CastF32ToBf16(P(_params.TrainableBf16), P(_params.Master), _params.TrainableElements);
    }

    /// <summary>
    /// Device-optimizer mode: re-reads the trainable parameters from their host Data (after a checkpoint was loaded
    /// into them, say). Host-optimizer mode does this before every forward anyway.
    /// </summary>
    public void UploadFromHost()
    {
        ThrowIfDisposed();
        UploadTrainables();
        _device.Synchronize();
    }

    /// <summary>
    /// Device-optimizer mode: copies the fp32 master weights of every trainable parameter back into its host
    /// <see cref="Parameter.Data"/>, so LoraAdapter.Save / TransformerModel.Save and checkpoints work unchanged.
    /// In host-optimizer mode the host is authoritative already and this does nothing.
    /// </summary>
    public void SyncToHost()
    {
        ThrowIfDisposed();
        if (!_options.DeviceOptimizer || _params.TrainableElements == 0) return;
        _device.Download<float>(_staging, P(_params.Master));
        foreach (var d in _params.Trainable) _staging.AsSpan((int)d.TrainableIndex, d.Length).CopyTo(d.Host.Data);
    }

    /// <summary>Overwrites every trainable parameter's host Grad with the device's accumulated gradient.</summary>
    public void CopyGradientsToHost()
    {
        ThrowIfDisposed();
        if (_params.TrainableElements == 0) return;
        _device.Download<float>(_staging, P(_params.Grad));
        foreach (var d in _params.Trainable) _staging.AsSpan((int)d.TrainableIndex, d.Length).CopyTo(GradientClipping.Grad(d.Host));
    }

    private void AddGradientsToHost()
    {
        if (_params.TrainableElements == 0) return;
        _device.Download<float>(_staging, P(_params.Grad));
        foreach (var d in _params.Trainable)
        {
            var g = GradientClipping.Grad(d.Host);
            TensorPrimitives.Add(g, _staging.AsSpan((int)d.TrainableIndex, d.Length), g);
        }
    }

    public void ZeroGrad()
    {
        ThrowIfDisposed();
        // Gradients live where the optimizer reads them: on the device in device-optimizer mode (the host copies are
        // never written then, so zeroing them would be a wasted pass over every trainable parameter each step).
        if (_options.DeviceOptimizer)
        {
            if (_params.TrainableElements > 0) _device.Zero(P(_params.Grad), _params.Grad.Bytes);
            return;
        }
        for (int i = 0; i < TrainableParameters.Count; i++) TrainableParameters[i].ZeroGrad(); // no enumerator: a step allocates nothing
    }

    // ---------------------------------------------------------------- activations and batches

    private void EnsureActivations(int rows, bool maskBuffer)
    {
        if (_acts is not null && _acts.Rows >= rows && (_acts.HasMaskBuffer || !maskBuffer)) return;
        int capacity = Math.Max(rows, _acts?.Rows ?? 0);
        bool mask = maskBuffer || (_acts?.HasMaskBuffer ?? false);
        var plan = ActivationLayout.Plan(Config, capacity, _loraRanks, mask, _options.HeadChunkBytes, _options.Recompute);
        DropGraphs(); // they point into the old arena
        if (_acts is not null) _device.Free(_actBase);
        _acts = null;
        _actBase = _device.Allocate(plan.Arena.TotalBytes);
        _acts = plan;
        if (_idsHost.Length < capacity) { _idsHost = new int[capacity]; _targetsHost = new int[capacity]; }
        if (mask && _maskHost.Length < (long)capacity * Config.IntermediateSize)
        {
            _maskHost = new float[checked(capacity * Config.IntermediateSize)];
            _maskBits = new ushort[_maskHost.Length];
        }
    }

    private void CheckShape(int idsLength, int b, int t) => ModelRules.CheckBatch(Config, MaxPositions, idsLength, b, t);

    /// <summary>Validates ids (and labels), writes the ids and the shifted targets into the host staging arrays and uploads
    /// them. Returns the number of counted targets.</summary>
    private int UploadBatch(int[] ids, int[]? labels, int b, int t)
    {
        int n = b * t, v = Config.VocabSize, counted = 0;
        ModelRules.CheckTokens(Config, ids.AsSpan(0, n));
        ids.AsSpan(0, n).CopyTo(_idsHost);
        _device.Upload<int>(A(_acts!.Ids), _idsHost.AsSpan(0, n));
        if (labels is null) return 0;
        for (int r = 0; r < b; r++)
        {
            for (int j = 0; j < t; j++)
            {
                int y = j < t - 1 ? labels[r * t + j + 1] : TokenBatch.IgnoreIndex;
                if (y != TokenBatch.IgnoreIndex)
                {
                    if ((uint)y >= (uint)v) throw new ArgumentOutOfRangeException(nameof(labels), $"target id {y} is outside the vocabulary [0, {v})");
                    counted++;
                }
                _targetsHost[r * t + j] = y;
            }
        }
        _device.Upload<int>(A(_acts.Targets), _targetsHost.AsSpan(0, n));
        return counted;
    }

    private static bool NeedsHostMask(FfnPerturbation? p) => p is { HasMask: true } and not PhiloxFfnPerturbation;

    // ---------------------------------------------------------------- ITrainableModel

    public (double LossSum, int Counted) ForwardBackward(TokenBatch batch, float lossScale, in StepContext context)
    {
        ThrowIfDisposed();
        if (_inferenceOnly) throw new InvalidOperationException("this CudaTransformer was made for inference and computes no gradients");
        int b = batch.BatchSize, t = batch.SeqLen;
        CheckShape(batch.InputIds.Length, b, t);
        if (batch.Labels.Length != b * t) throw new ArgumentException($"expected {b * t} labels, got {batch.Labels.Length}");
        EnsureActivations(b * t, NeedsHostMask(context.Perturbation));
        int counted = UploadBatch(batch.InputIds, batch.Labels, b, t);
        if (!_options.DeviceOptimizer) UploadTrainables();
        RunStep(Mode.Train, b, t, lossScale, context);
        _device.Download<float>(_lossHost, A(_acts!.LossSum));
        if (!_options.DeviceOptimizer) AddGradientsToHost();
        return (_lossHost[0], counted);
    }

    public (double LossSum, int Counted) Loss(TokenBatch batch)
    {
        ThrowIfDisposed();
        int b = batch.BatchSize, t = batch.SeqLen;
        CheckShape(batch.InputIds.Length, b, t);
        if (batch.Labels.Length != b * t) throw new ArgumentException($"expected {b * t} labels, got {batch.Labels.Length}");
        EnsureActivations(b * t, false);
        int counted = UploadBatch(batch.InputIds, batch.Labels, b, t);
        if (!_options.DeviceOptimizer) UploadTrainables();
        RunStep(Mode.Eval, b, t, 1f, StepContext.Eval);
        _device.Download<float>(_lossHost, A(_acts!.LossSum));
        return (NonFiniteValueException.ThrowIfNotFinite(_lossHost[0], "model output", "the loss"), counted);
    }

    /// <summary>Logits [B*T, V] in fp32 (adapter applied, no perturbation unless one is given), as CpuTransformer.ForwardLogits.</summary>
    public float[] ForwardLogits(int[] ids, int b, int t, FfnPerturbation? perturbation = null)
    {
        ThrowIfDisposed();
        CheckShape(ids.Length, b, t);
        EnsureActivations(b * t, NeedsHostMask(perturbation));
        UploadBatch(ids, null, b, t);
        if (!_options.DeviceOptimizer) UploadTrainables();
        var ctx = new StepContext(default, perturbation, Training: false);
        DecideDrops(ctx);
        WriteStepParams(1f, ctx);
        Forward(b, t, ctx);
        var acts = _acts!;
        int n = b * t, h = Config.HiddenSize, v = Config.VocabSize;
        var logits = new float[(long)n * v];
        _device.PushRange("lm_head");
        for (int r0 = 0; r0 < n; r0 += acts.HeadChunkRows)
        {
            int rows = Math.Min(acts.HeadChunkRows, n - r0);
            _ops.MatmulNT(A(acts.Logits), A(acts.FinalNormOut).OffsetBytes((long)r0 * h * 2), Weight(Model.Head), rows, h, v, false, 1f, CudaDataType.R32F);
            _device.Download(logits.AsSpan(r0 * v, rows * v), A(acts.Logits));
        }
        _device.PopRange();
        NonFiniteValueException.ThrowIfAny(logits, "model output", "logits");
        return logits;
    }

    // ---------------------------------------------------------------- one step, eager or as a graph

    private void RunStep(Mode mode, int b, int t, float lossScale, in StepContext ctx)
    {
        DecideDrops(ctx);
        WriteStepParams(lossScale, ctx);
        bool capturable = _options.CaptureGraphs && _device.SupportsGraphs && !NeedsHostMask(ctx.Perturbation);
        if (!capturable)
        {
            Record(mode, b, t, ctx);
            return;
        }
        var key = new GraphKey(mode, b, t, mode == Mode.Train && ctx.Training && _anyLoraDropout);
        var graph = FindGraph(key) ?? Capture(key, mode, b, t, ctx);
        graph.LastUse = ++_graphClock;
        graph.Graph.Launch();
        GraphLaunches++;
    }

    /// <summary>The layers this step drops (Trans-PEFT cross-layer dropping), decided on the host before anything is queued.</summary>
    private void DecideDrops(in StepContext ctx)
    {
        for (int l = 0; l < _dropped.Length; l++) _dropped[l] = ctx.Perturbation?.IsDropped(l) ?? false;
    }

    /// <summary>Writes this step's <see cref="StepParams"/> into the pinned staging copy and queues its upload. The
    /// previous step's copy is done: every step ends with a synchronizing download of the loss.</summary>
    private unsafe void WriteStepParams(float lossScale, in StepContext ctx)
    {
        var mask = ctx.Perturbation as PhiloxFfnPerturbation;
        float pMask = mask is { HasMask: true } ? (float)mask.PMask : 0f;
        *(StepParams*)_stepHost = StepParams.For(mask?.Stream ?? default, pMask, ctx.Random, lossScale);
        _device.UploadAsync(_stepDevice, _stepHost, StepParams.Bytes);
    }

    private CachedGraph? FindGraph(GraphKey key)
    {
        foreach (var g in _graphs)
            if (g.Key == key && g.Dropped.AsSpan().SequenceEqual(_dropped)) return g;
        return null;
    }

    /// <summary>Records the step as a graph and caches it, evicting the least recently used graph when
    /// <see cref="CudaTransformerOptions.MaxGraphs"/> are held.</summary>
    private CachedGraph Capture(GraphKey key, Mode mode, int b, int t, in StepContext ctx)
    {
        if (_graphs.Count >= Math.Max(1, _options.MaxGraphs))
        {
            var oldest = _graphs[0];
            foreach (var g in _graphs) if (g.LastUse < oldest.LastUse) oldest = g;
            _graphs.Remove(oldest);
            oldest.Graph.Dispose();
        }
        _device.BeginCapture();
        try { Record(mode, b, t, ctx); }
        catch
        {
            _device.AbortCapture();
            throw;
        }
        var captured = new CachedGraph(key, (bool[])_dropped.Clone(), _device.EndCapture());
        _graphs.Add(captured);
        GraphCaptures++;
        return captured;
    }

    private void DropGraphs()
    {
        foreach (var g in _graphs) g.Graph.Dispose();
        _graphs.Clear();
    }

    /// <summary>Queues a whole step: (zero gradients,) forward, loss (and its gradient), backward, loss sum.</summary>
    private void Record(Mode mode, int b, int t, in StepContext ctx)
    {
        var acts = _acts!;
        int n = b * t;
        if (mode == Mode.Train && !_options.DeviceOptimizer && _params.TrainableElements > 0)
            _device.Zero(P(_params.Grad), _params.Grad.Bytes);
        Forward(b, t, ctx);
        if (mode == Mode.Train)
        {
            HeadTrain(n);
            Backward(b, t, ctx);
        }
        else HeadEval(n);
        _ops.ReduceSum(A(acts.LossSum), A(acts.Losses), n, 1f);
    }

    // ---------------------------------------------------------------- forward

    private void Forward(int b, int t, in StepContext ctx)
    {
        var c = Config;
        var acts = _acts!;
        int n = b * t, h = c.HiddenSize;
        _device.PushRange("forward");
        _ops.EmbeddingForward(A(acts.Xs[0]), A(acts.Ids), Weight(Model.Embed), n, h, c.VocabSize);
        for (int l = 0; l < c.NumLayers; l++)
        {
            _device.PushRange(_forwardRange[l]);
            LayerForward(l, b, t, ctx);
            _device.PopRange();
        }
        _ops.RmsNormForward(A(acts.FinalNormOut), A(acts.FinalRstd), A(acts.Xs[c.NumLayers]), Weight(Model.FinalNorm), n, h, _eps);
        _device.PopRange();
    }

    private void LayerForward(int l, int b, int t, in StepContext ctx)
    {
        var c = Config;
        var w = Model.Layers[l];
        var acts = _acts!;
        var la = acts.Layers[l];
        int n = b * t, h = c.HiddenSize, inter = c.IntermediateSize;
        DevicePtr x = A(acts.Xs[l]), xNext = A(acts.Xs[l + 1]);

        // NVTX op ranges (Nsight: filter with --nvtx-include "layer 3 forward/attention"); constant names, no allocation.
        _device.PushRange("attention");
        _ops.RmsNormForward(A(la.N1), A(la.Rstd1), x, Weight(w.InputNorm), n, h, _eps);
        ProjForward(A(la.Q), A(la.N1), n, l, Projection.Q, ctx);
        ProjForward(A(la.K), A(la.N1), n, l, Projection.K, ctx);
        ProjForward(A(la.V), A(la.N1), n, l, Projection.V, ctx);
        var invFreq = P(_params.InvFreq);
        _ops.RopeForward(A(la.Q), invFreq, b, t, c.NumHeads, c.HeadDim, 0);
        _ops.RopeForward(A(la.K), invFreq, b, t, c.NumKvHeads, c.HeadDim, 0);
        _ops.AttentionForward(A(la.Att), A(la.Lse), A(la.Q), A(la.K), A(la.V), b, t, t, t, c.NumHeads, c.NumKvHeads, c.HeadDim, _attentionScale);
        ProjForward(A(acts.Proj), A(la.Att), n, l, Projection.O, ctx);
        _device.PopRange();

        if (_dropped[l])
        {
            // Cross-layer knowledge dropping: the post-attention norm and the MLP are skipped; x' = h = x + attn.
            _ops.Add(xNext, x, A(acts.Proj), (long)n * h);
            return;
        }
        _device.PushRange("mlp");
        _ops.RmsNormResidualForward(A(la.H), A(la.N2), A(la.Rstd2), x, A(acts.Proj), Weight(w.PostNorm), n, h, _eps);
        ProjForward(A(la.G), A(la.N2), n, l, Projection.Gate, ctx);
        ProjForward(A(la.U), A(la.N2), n, l, Projection.Up, ctx);
        SwiGluActivation(A(acts.DA), A(la.G), A(la.U), n, inter, l, ctx);
        ProjForward(A(acts.Proj), A(acts.DA), n, l, Projection.Down, ctx);
        _ops.Add(xNext, A(la.H), A(acts.Proj), (long)n * h);
        _device.PopRange();
    }

    /// <summary>a = silu(g)·u·mask with this step's Trans-PEFT mask of layer <paramref name="l"/>: none or Philox (the
    /// kernel reads p_mask and the stream from the step's StepParams), or host-given.</summary>
    private void SwiGluActivation(DevicePtr a, DevicePtr g, DevicePtr u, int n, int inter, int l, in StepContext ctx)
    {
        _ops.SwiGluForward(a, g, u, n, inter, _stepDevice, l);
        if (NeedsHostMask(ctx.Perturbation))
        {
            UploadHostMask(ctx.Perturbation!, l, n, inter);
            _ops.Multiply(a, a, A(_acts!.Mask), (long)n * inter);
        }
    }

    /// <summary>Fills the mask of layer l on the host (as the CPU does) and uploads it as bf16 (0/1 are exact).</summary>
    private void UploadHostMask(FfnPerturbation p, int l, int n, int inter)
    {
        int count = n * inter;
        var mask = _maskHost.AsSpan(0, count);
        p.FillMask(l, 0, n, inter, mask);
        var bits = _maskBits.AsSpan(0, count);
        for (int i = 0; i < count; i++) bits[i] = BFloat16.FromSingle(mask[i]);
        _device.Upload<ushort>(A(_acts!.Mask), bits);
    }

    /// <summary>The LoRA dropout probability this module uses in this step (0 outside training).</summary>
    private static float DropoutOf(LoraModule lora, in StepContext ctx) => ctx.Training && lora.Dropout > 0 ? (float)lora.Dropout : 0f;

    /// <summary>y[N,out] = x[N,in]·Wᵀ (+ b) (+ s·(drop(x)·Aᵀ)·Bᵀ), saving t = drop(x)·Aᵀ for the backward.</summary>
    private void ProjForward(DevicePtr y, DevicePtr x, int n, int l, Projection p, in StepContext ctx)
    {
        var w = Model.Layers[l];
        var weight = w.Weight(p);
        int inDim = weight.Shape[1], outDim = weight.Shape[0];
        _ops.MatmulNT(y, x, Weight(weight), n, inDim, outDim, accumulate: false);
        if (w.Bias(p) is { } bias) _ops.BiasAdd(y, Weight(bias), n, outDim);
        if (_lora[l, (int)p] is not { } lora) return;
        var loraT = A(_acts!.Layers[l].LoraT[(int)p]);
        _ops.LoraShrink(loraT, x, Weight(lora.A), n, inDim, lora.Rank, DropoutOf(lora, ctx), _stepDevice, l, (int)p);
        _ops.MatmulNT(y, loraT, Weight(lora.B), n, lora.Rank, outDim, accumulate: true, alpha: lora.Scaling);
    }

    // ---------------------------------------------------------------- head

    /// <summary>Training head, chunk by chunk: bf16 logits, fused cross-entropy turning them into dlogits in place,
    /// then dxf = dlogits·H and (when trainable) dH += dlogitsᵀ·xf. The [N, V] matrix never exists.</summary>
    private void HeadTrain(int n)
    {
        var acts = _acts!;
        int h = Config.HiddenSize, v = Config.VocabSize;
        var head = Model.Head;
        var dHead = GradOf(head);
        _device.PushRange("lm_head + loss");
        for (int r0 = 0; r0 < n; r0 += acts.HeadChunkRows)
        {
            int rows = Math.Min(acts.HeadChunkRows, n - r0);
            var xf = A(acts.FinalNormOut).OffsetBytes((long)r0 * h * 2);
            var logits = A(acts.Logits);
            _ops.MatmulNT(logits, xf, Weight(head), rows, h, v, accumulate: false);
            _ops.CrossEntropyBf16(logits, A(acts.Targets).OffsetBytes((long)r0 * 4), A(acts.Losses).OffsetBytes((long)r0 * 4), rows, v, _stepDevice);
            _ops.MatmulNN(A(acts.DN).OffsetBytes((long)r0 * h * 2), logits, Weight(head), rows, v, h, accumulate: false);
            if (!dHead.IsNull) _ops.MatmulTN(dHead, logits, xf, rows, v, h, accumulate: true);
        }
        _device.PopRange();
    }

    /// <summary>Evaluation head: fp32 logits and fp32 cross-entropy per chunk; only the per-row losses are kept.</summary>
    private void HeadEval(int n)
    {
        var acts = _acts!;
        int h = Config.HiddenSize, v = Config.VocabSize;
        _device.PushRange("lm_head + loss");
        for (int r0 = 0; r0 < n; r0 += acts.HeadChunkRows)
        {
            int rows = Math.Min(acts.HeadChunkRows, n - r0);
            var logits = A(acts.Logits);
            _ops.MatmulNT(logits, A(acts.FinalNormOut).OffsetBytes((long)r0 * h * 2), Weight(Model.Head), rows, h, v, false, 1f, CudaDataType.R32F);
            _ops.CrossEntropyF32(logits, A(acts.Targets).OffsetBytes((long)r0 * 4), A(acts.Losses).OffsetBytes((long)r0 * 4), rows, v, DevicePtr.Null);
        }
        _device.PopRange();
    }

    // ---------------------------------------------------------------- backward

    /// <summary>Reverse pass. On entry acts.DN holds d loss / d final-norm output.</summary>
    private void Backward(int b, int t, in StepContext ctx)
    {
        var c = Config;
        var acts = _acts!;
        int n = b * t, h = c.HiddenSize;
        _device.PushRange("backward");
        var xL = A(acts.Xs[c.NumLayers]);
        _ops.RmsNormBackward(A(acts.DX), A(acts.DN), xL, Weight(Model.FinalNorm), A(acts.FinalRstd), n, h, accumulate: false);
        if (GradOf(Model.FinalNorm) is { IsNull: false } dNorm) _ops.RmsNormBackwardWeight(dNorm, A(acts.DN), xL, A(acts.FinalRstd), n, h);
        for (int l = c.NumLayers - 1; l >= 0; l--)
        {
            _device.PushRange(_backwardRange[l]);
            // Recomputation: the shared regions hold the last layer's tensors; every other layer's are refilled by its
            // forward from xs[l] (which also rewrites xs[l+1], no longer read: layer l+1's backward is done).
            if (_options.Recompute && l < c.NumLayers - 1) LayerForward(l, b, t, ctx);
            LayerBackward(l, b, t, ctx);
            _device.PopRange();
        }
        if (GradOf(Model.Embed) is { IsNull: false } dEmbed) _ops.EmbeddingBackward(dEmbed, A(acts.DX), A(acts.Ids), n, h, c.VocabSize);
        _device.PopRange();
    }

    /// <summary>On entry acts.DX = d loss / d xs[l+1]; on exit acts.DX = d loss / d xs[l].</summary>
    private void LayerBackward(int l, int b, int t, in StepContext ctx)
    {
        var c = Config;
        var w = Model.Layers[l];
        var acts = _acts!;
        var la = acts.Layers[l];
        int n = b * t, h = c.HiddenSize, inter = c.IntermediateSize;
        var dx = A(acts.DX);

        if (!_dropped[l])
        {
            _device.PushRange("mlp");
            // x' = h + down(a). The activation a is recomputed from the saved g, u (and the regenerated mask) into DG.
            var aRecomputed = A(acts.DG);
            SwiGluActivation(aRecomputed, A(la.G), A(la.U), n, inter, l, ctx);
            ProjBackward(A(acts.DA), dx, aRecomputed, n, l, Projection.Down, accumulate: false, ctx);
            if (NeedsHostMask(ctx.Perturbation))
            {
                // The mask buffer still holds layer l's mask, uploaded by SwiGluActivation just above.
                _ops.Multiply(A(acts.DA), A(acts.DA), A(acts.Mask), (long)n * inter);
            }
            _ops.SwiGluBackward(A(acts.DG), A(acts.DU), A(acts.DA), A(la.G), A(la.U), n, inter, _stepDevice, l);
            ProjBackward(A(acts.DN), A(acts.DG), A(la.N2), n, l, Projection.Gate, accumulate: false, ctx);
            ProjBackward(A(acts.DN), A(acts.DU), A(la.N2), n, l, Projection.Up, accumulate: true, ctx);
            _ops.RmsNormBackward(dx, A(acts.DN), A(la.H), Weight(w.PostNorm), A(la.Rstd2), n, h, accumulate: true);
            if (GradOf(w.PostNorm) is { IsNull: false } dPost) _ops.RmsNormBackwardWeight(dPost, A(acts.DN), A(la.H), A(la.Rstd2), n, h);
            _device.PopRange();
        }
        // Now dx = d loss / d h, h = x + o_proj(att).
        _device.PushRange("attention");
        ProjBackward(A(acts.DAtt), dx, A(la.Att), n, l, Projection.O, accumulate: false, ctx);
        _ops.AttentionBackward(A(acts.DQ), A(acts.DK), A(acts.DV), A(acts.Dsum), A(acts.DAtt), A(la.Q), A(la.K), A(la.V), A(la.Att), A(la.Lse),
            b, t, c.NumHeads, c.NumKvHeads, c.HeadDim, _attentionScale);
        var invFreq = P(_params.InvFreq);
        _ops.RopeBackward(A(acts.DQ), invFreq, b, t, c.NumHeads, c.HeadDim, 0);
        _ops.RopeBackward(A(acts.DK), invFreq, b, t, c.NumKvHeads, c.HeadDim, 0);
        ProjBackward(A(acts.DN), A(acts.DQ), A(la.N1), n, l, Projection.Q, accumulate: false, ctx);
        ProjBackward(A(acts.DN), A(acts.DK), A(la.N1), n, l, Projection.K, accumulate: true, ctx);
        ProjBackward(A(acts.DN), A(acts.DV), A(la.N1), n, l, Projection.V, accumulate: true, ctx);
        _ops.RmsNormBackward(dx, A(acts.DN), A(acts.Xs[l]), Weight(w.InputNorm), A(la.Rstd1), n, h, accumulate: true);
        if (GradOf(w.InputNorm) is { IsNull: false } dIn) _ops.RmsNormBackwardWeight(dIn, A(acts.DN), A(acts.Xs[l]), A(la.Rstd1), n, h);
        _device.PopRange();
    }

    /// <summary>
    /// dIn[N,in] (+)= dy·W (+ the LoRA path); dW, db, dA, dB (fp32) accumulated for trainable ones. The LoRA order
    /// follows CpuLinear: dt = s·dy·B; dB += s·dyᵀ·t; dA += dtᵀ·drop(x); dIn += drop'(dt·A).
    /// </summary>
    private void ProjBackward(DevicePtr dIn, DevicePtr dOut, DevicePtr x, int n, int l, Projection p, bool accumulate, in StepContext ctx)
    {
        var w = Model.Layers[l];
        var weight = w.Weight(p);
        int inDim = weight.Shape[1], outDim = weight.Shape[0];
        if (GradOf(weight) is { IsNull: false } dW) _ops.MatmulTN(dW, dOut, x, n, outDim, inDim, accumulate: true);
        _ops.MatmulNN(dIn, dOut, Weight(weight), n, outDim, inDim, accumulate);
        if (GradOf(w.Bias(p)) is { IsNull: false } dBias) _ops.ColumnSum(dBias, dOut, n, outDim);
        if (_lora[l, (int)p] is not { } lora) return;

        var acts = _acts!;
        int r = lora.Rank;
        var dt = A(acts.ScratchR);
        var loraT = A(acts.Layers[l].LoraT[(int)p]);
        _ops.MatmulNN(dt, dOut, Weight(lora.B), n, outDim, r, accumulate: false, alpha: lora.Scaling);
        if (GradOf(lora.B) is { IsNull: false } dB) _ops.MatmulTN(dB, dOut, loraT, n, outDim, r, accumulate: true, alpha: lora.Scaling);
        float pDrop = DropoutOf(lora, ctx);
        var xin = x;
        if (pDrop > 0)
        {
            xin = A(acts.ScratchIn);
            _ops.LoraDropoutApply(xin, x, n, inDim, pDrop, _stepDevice, l, (int)p, accumulate: false);
        }
        if (GradOf(lora.A) is { IsNull: false } dA) _ops.MatmulTN(dA, dt, xin, n, r, inDim, accumulate: true);
        if (pDrop == 0)
        {
            _ops.MatmulNN(dIn, dt, Weight(lora.A), n, r, inDim, accumulate: true);
            return;
        }
        // With dropout, d(drop(x))/dx = keep/(1-p): form dt·A in scratch, then mask, scale and add.
        _ops.MatmulNN(A(acts.ScratchIn), dt, Weight(lora.A), n, r, inDim, accumulate: false);
        _ops.LoraDropoutApply(dIn, A(acts.ScratchIn), n, inDim, pDrop, _stepDevice, l, (int)p, accumulate: true);
    }

    // ---------------------------------------------------------------- lifetime

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>
    /// The trainer's optimizer: in device-optimizer mode an AdamW on the GPU (<see cref="DeviceAdamW"/>), with these
    /// options' betas, epsilon and weight decay; in host-optimizer mode null (the trainer makes a host one).
    /// </summary>
    public Optimizer? CreateOptimizer(TrainingOptions options)
    {
        ThrowIfDisposed();
        if (!_options.DeviceOptimizer) return null;
        if (options.Optimizer != OptimizerKind.AdamW)
            throw new InvalidOperationException($"the on-device optimizer is AdamW, this run asks for {options.Optimizer}: make the CudaTransformer with DeviceOptimizer = false to run it on the host");
        if (_optimizer is not null) throw new InvalidOperationException("this CudaTransformer already has an optimizer (one trainer per model)");
        _optimizer = new CudaAdamW(this, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        return new DeviceAdamW(this, _optimizer);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _optimizer?.Dispose();
        DropGraphs();
        if (_acts is not null) _device.Free(_actBase);
        _device.FreeHost(_stepHost);
        _device.Free(_stepDevice);
        _device.Free(_paramBase);
        _sharedBase?.Release();
        if (_ownsDevice) _device.Dispose();
    }
}
