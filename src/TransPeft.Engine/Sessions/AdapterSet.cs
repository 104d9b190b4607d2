using TransPeft.Engine.Compute;
using TransPeft.Engine.Lora;

namespace TransPeft.Engine.Sessions;

/// <summary>
/// The adapters a session serves, by name (ONNX Runtime GenAI's Adapters): load and unload while requests run.
/// A request resolves its adapter name once when it starts and keeps that adapter until it ends, so unloading
/// never pulls weights from under a running request. Thread-safe.
/// </summary>
public sealed class AdapterSet
{
    private readonly InferenceSession _session;
    private readonly object _gate = new();
    private Dictionary<string, AdapterEntry> _entries = new(StringComparer.Ordinal); // replaced, never mutated: readers need no lock

    internal AdapterSet(InferenceSession session) => _session = session;

    /// <summary>Loads a PEFT adapter folder (adapter_config.json + adapter_model.safetensors), checked against the
    /// session's model, under <paramref name="name"/>. Throws when the name is taken (unload it first).</summary>
    public LoraAdapter Load(string name, string dir)
    {
        var adapter = LoraAdapter.Load(dir, _session.Config);
        Add(name, adapter, dir);
        return adapter;
    }

    /// <summary>Serves an adapter the host already holds (made by <see cref="LoraAdapter.Create"/> or trained) under <paramref name="name"/>.</summary>
    public void Add(string name, LoraAdapter adapter) => Add(name, adapter, null);

    private void Add(string name, LoraAdapter adapter, string? source)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("adapter name: expected a non-empty name");
        Model.ModelRules.CheckAdapter(_session.Config, adapter);
        lock (_gate)
        {
            if (_entries.ContainsKey(name)) throw new ArgumentException($"adapter '{name}' is already loaded; unload it first");
            _entries = new Dictionary<string, AdapterEntry>(_entries, StringComparer.Ordinal) { [name] = new AdapterEntry(name, adapter, source, _session) };
        }
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

    public LoraAdapter this[string name] => Resolve(name).Adapter;

    /// <summary>The folder an adapter was loaded from (null when added from memory).</summary>
    public string? SourceOf(string name) => Resolve(name).Source;

    internal AdapterEntry Resolve(string name) =>
        _entries.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"adapter '{name}' is not loaded (loaded: {(_entries.Count == 0 ? "none" : string.Join(", ", Names))})");
}

/// <summary>One served adapter and its backend model object (made on first use).</summary>
internal sealed class AdapterEntry(string name, LoraAdapter adapter, string? source, InferenceSession session)
{
    private readonly Lazy<IInferenceModel> _backend = new(() => session.CreateBackend(adapter));

    public string Name => name;
    public LoraAdapter Adapter => adapter;
    public string? Source => source;
    public IInferenceModel Backend => _backend.Value;
    public bool HasBackend => _backend.IsValueCreated;
}
