using TransPeft.Engine.Compute;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;

namespace TransPeft.Engine.Sessions;

/// <summary>
/// The adapters a session serves, by name (ONNX Runtime GenAI's Adapters): load, replace and unload while requests
/// run. A request resolves its adapter name once when it starts and keeps that adapter until it ends, so unloading
/// never pulls weights from under a running request. Thread-safe.
/// <para>Replacing (<see cref="Load(string, string, bool)"/> with replace, or <see cref="Replace"/>) an adapter of the
/// same shape (same modules, ranks and scaling) is a hot swap in place (on CUDA the device pool's copy is re-uploaded into its slot too): the new weights are copied
/// into the served buffers between two steps, so running requests continue with the new weights from their next
/// token and nothing is reallocated. Every step sees one set of weights whole, never a mix: a
/// <see cref="BatchedGenerator"/> holds <see cref="SwapGate"/> for each of its steps, and an
/// <see cref="InferenceContext"/> holds the step gate (<see cref="EnterStep"/>, shared by all contexts, so they do not
/// wait for each other) for each prefill, decode step, score or forward; the copy holds both exclusively.
/// Any other replacement is a new entry: running requests finish with the old weights.</para>
/// </summary>
public sealed class AdapterSet
{
    private readonly InferenceSession _session;
    private readonly object _gate = new();
    private Dictionary<string, AdapterEntry> _entries = new(StringComparer.Ordinal); // replaced, never mutated: readers need no lock

    internal AdapterSet(InferenceSession session) => _session = session;

    /// <summary>Loads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors), checked against the
    /// session's model, under <paramref name="name"/>. Throws when the name is taken (unload it first). Returns the adapter
    /// as served (bf16-rounded under <see cref="AdapterPrecision.BFloat16"/>).</summary>
    public LoraAdapter Load(string name, string dir) => Add(name, LoraAdapter.Load(dir, _session.Config), dir).Adapter;

    /// <summary>
    /// Loads a PEFT adapter folder under <paramref name="name"/>, or with <paramref name="replace"/> replaces the adapter of
    /// that name (in place when the shapes agree, see the class remarks), and says how long it took (reading and checking
    /// the files, plus the copy into place).
    /// </summary>
    public AdapterLoadResult Load(string name, string dir, bool replace)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        if (!replace)
        {
            var loaded = Add(name, LoraAdapter.Load(dir, _session.Config), dir);
            // CUDA: the upload, before reading the clock (Elapsed includes it); the CPU image was built by Add.
            var preloaded = _session.IsCuda ? _session.Preload(loaded) : null;
            return new AdapterLoadResult(name, sw.Elapsed, InPlace: false) { DeviceUpload = preloaded };
        }
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("adapter name: expected a non-empty name");
        var (inPlace, deviceUpload) = Replace(name, LoraAdapter.Load(dir, _session.Config), dir);
        return new AdapterLoadResult(name, sw.Elapsed, inPlace) { DeviceUpload = deviceUpload };
    }

    /// <summary>
    /// Serves <paramref name="adapter"/> (made by <see cref="LoraAdapter.Create"/> or trained in this process) under
    /// <paramref name="name"/>, replacing the adapter of that name if there is one: in place when the shapes agree (see the class
    /// remarks; the served buffers then keep their identity and <paramref name="adapter"/> is only read), else as a new entry that serves <paramref name="adapter"/> itself, or its bf16-rounded copy under
    /// <see cref="AdapterPrecision.BFloat16"/> (as <see cref="Add(string, LoraAdapter)"/> does: do not change its weights
    /// afterwards). Returns true for an in-place swap.
    /// </summary>
    public bool Replace(string name, LoraAdapter adapter) => Replace(name, adapter, null).InPlace;

    private (bool InPlace, TimeSpan? Upload) Replace(string name, LoraAdapter adapter, string? source)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("adapter name: expected a non-empty name");
        Model.ModelRules.CheckAdapter(_session.Config, adapter);
        AdapterEntry entry;
        lock (_gate)
        {
            if (_entries.TryGetValue(name, out var old))
            {
                if (SameShape(old.Adapter, adapter))
                {
                    TimeSpan? upload;
                    lock (SwapGate)
                    {
                        _steps.EnterWriteLock();
                        try
                        {
                            CopyInto(old.Adapter, adapter);
                            _session.RoundServed(old.Adapter);
                            _session.Swapped(old); // CUDA: the device copy is stale now ...
                            upload = _session.Preload(old); // ... and refreshed in place before the next step
                        }
                        finally { _steps.ExitWriteLock(); }
                    }
                    return (true, upload);
                }
                _session.Retire(old);
            }
            entry = new AdapterEntry(name, _session.ForServing(adapter, owned: source is not null), source, _session);
            _entries = new Dictionary<string, AdapterEntry>(_entries, StringComparer.Ordinal) { [name] = entry };
        }
        return (false, _session.Preload(entry));
    }

    /// <summary>Held by a <see cref="BatchedGenerator"/> for each step and by an in-place swap for its copy.</summary>
    internal object SwapGate { get; } = new();

    /// <summary>Shared by the steps of every <see cref="InferenceContext"/>, exclusive for an in-place swap's copy. A
    /// reader-writer lock rather than <see cref="SwapGate"/>: contexts on many threads must not queue behind each other.</summary>
    private readonly ReaderWriterLockSlim _steps = new(LockRecursionPolicy.NoRecursion);

    /// <summary>
    /// Enters one step of a context (prefill, decode step, score, forward): until the scope is disposed no in-place swap
    /// copies weights. Uncontended it costs an interlocked operation and allocates nothing (after the thread's first use).
    /// </summary>
    internal StepScope EnterStep()
    {
        _steps.EnterReadLock();
        return new StepScope(_steps);
    }

    internal readonly struct StepScope(ReaderWriterLockSlim steps) : IDisposable
    {
        public void Dispose() => steps.ExitReadLock();
    }

    private static bool SameShape(LoraAdapter a, LoraAdapter b)
    {
        if (a.NumLayers != b.NumLayers) return false;
        for (int l = 0; l < a.NumLayers; l++)
            foreach (var p in Model.ProjectionNames.All)
            {
                LoraModule? x = a[l, p], y = b[l, p];
                if (x is null != y is null) return false;
                if (x is not null && (x.Rank != y!.Rank || x.Scaling != y.Scaling)) return false;
            }
        return true;
    }

    private static void CopyInto(LoraAdapter served, LoraAdapter fresh)
    {
        foreach (var m in fresh.Modules())
        {
            var target = served[m.Layer, m.Projection]!;
            m.A.Data.CopyTo(target.A.Data, 0);
            m.B.Data.CopyTo(target.B.Data, 0);
        }
    }

    /// <summary>Serves an adapter the host already holds (made by <see cref="LoraAdapter.Create"/> or trained) under <paramref name="name"/>.</summary>
    /// <remarks>With <see cref="AdapterPrecision.BFloat16"/> the session serves a rounded copy (see
    /// <see cref="this[string]"/>), leaving <paramref name="adapter"/> as it is. Do not change a served adapter's weights
    /// afterwards (through <see cref="LoraAdapter.Tensors"/> or by training it further): batched steps read a copy taken
    /// when the adapter is first served in a batch (the CPU image; on CUDA the device pool's), contexts the adapter
    /// itself, so the two would disagree. Change them with <see cref="Replace(string, LoraAdapter)"/>.</remarks>
    public void Add(string name, LoraAdapter adapter) => Add(name, adapter, null);

    private AdapterEntry Add(string name, LoraAdapter adapter, string? source)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("adapter name: expected a non-empty name");
        Model.ModelRules.CheckAdapter(_session.Config, adapter);
        AdapterEntry entry;
        lock (_gate)
        {
            if (_entries.ContainsKey(name)) throw new ArgumentException($"adapter '{name}' is already loaded; unload it first");
            entry = new AdapterEntry(name, _session.ForServing(adapter, owned: source is not null), source, _session);
            _entries = new Dictionary<string, AdapterEntry>(_entries, StringComparer.Ordinal) { [name] = entry };
        }
        if (!_session.IsCuda) _session.Preload(entry); // the CPU image, once batches are served (CUDA uploads on first use)
        return entry;
    }

    /// <summary>Stops serving <paramref name="name"/>; requests already running with it finish with it. False when no such adapter.</summary>
    public bool Unload(string name)
    {
        lock (_gate)
        {
            if (!_entries.TryGetValue(name, out var entry)) return false;
            var next = new Dictionary<string, AdapterEntry>(_entries, StringComparer.Ordinal);
            next.Remove(name);
            _entries = next;
            _session.Retire(entry);
            return true;
        }
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public IReadOnlyList<string> Names => [.. _entries.Keys.Order(StringComparer.Ordinal)];

    public int Count => _entries.Count;

    /// <summary>The adapter served under <paramref name="name"/>: the one loaded or added, or its bf16-rounded copy under
    /// <see cref="AdapterPrecision.BFloat16"/>.</summary>
    public LoraAdapter this[string name] => Resolve(name).Adapter;

    /// <summary>The folder an adapter was loaded from (null when added from memory).</summary>
    public string? SourceOf(string name) => Resolve(name).Source;

    /// <summary>Served names and the folders they came from (null when added from memory), sorted by name.</summary>
    public IReadOnlyList<(string Name, string? Source)> List() =>
        [.. _entries.Values.OrderBy(e => e.Name, StringComparer.Ordinal).Select(e => (e.Name, e.Source))];

    internal AdapterEntry? TryResolve(string name) => _entries.GetValueOrDefault(name);

    internal AdapterEntry Resolve(string name) =>
        _entries.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"adapter '{name}' is not loaded (loaded: {(_entries.Count == 0 ? "none" : string.Join(", ", Names))})");
}

/// <summary>How an adapter came to be served, and how long it took.</summary>
/// <param name="Name">The name requests use.</param>
/// <param name="Elapsed">Wall time: reading and checking the files, plus the copy into place for a hot swap, plus (CUDA)
/// the upload into the device adapter pool.</param>
/// <param name="InPlace">True when a replacement had the same shape and was copied into the served adapter's buffers.</param>
public readonly record struct AdapterLoadResult(string Name, TimeSpan Elapsed, bool InPlace)
{
    /// <summary>CUDA: packing the adapter's pinned image and its one asynchronous copy into a device pool slot, waited
    /// for (included in <see cref="Elapsed"/>); null on the CPU.</summary>
    public TimeSpan? DeviceUpload { get; init; }
}

/// <summary>One served adapter and its backend model object (made on first use).</summary>
internal sealed class AdapterEntry(string name, LoraAdapter adapter, string? source, InferenceSession session)
{
    private readonly Lazy<IInferenceModel> _backend = new(() => session.CreateBackend(adapter));
    private CpuLoraImage? _cpuImage;

    public string Name => name;
    public LoraAdapter Adapter => adapter;
    public string? Source => source;
    public IInferenceModel Backend => _backend.Value;
    public bool HasBackend => _backend.IsValueCreated;

    /// <summary>The adapter's image for the CPU's batched decoder, built on first use. Running requests hold the entry, so
    /// an unloaded or replaced adapter's image lives as long as they do.</summary>
    public CpuLoraImage CpuImage => _cpuImage ?? LazyInitializer.EnsureInitialized(ref _cpuImage, () => session.CreateCpuImage(adapter));

    /// <summary>After an in-place swap: the image (if built) takes the new weights.</summary>
    public void RefreshCpuImage() => _cpuImage?.Refresh(adapter);
}
