using System.Diagnostics;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Inference;

/// <summary>How an adapter came to be served, and how long it took.</summary>
/// <param name="Name">The name requests use.</param>
/// <param name="Elapsed">Wall time of the load: reading and checking the files, plus the copy into place for a hot swap.</param>
/// <param name="InPlace">True when a replacement had the same shape and was copied into the served adapter's buffers.</param>
public readonly record struct AdapterLoadResult(string Name, TimeSpan Elapsed, bool InPlace);

/// <summary>
/// Adapters served over one base model, by name: load, replace and unload while requests run. Thread-safe.
/// <list type="bullet">
/// <item>A request takes its adapter when it starts and keeps it: unloading stops new requests from naming it, and the
/// ones running finish with it.</item>
/// <item>Replacing an adapter with one of the same shape (same modules, same ranks) is a hot swap in place: the new
/// weights are copied into the served buffers between two batch steps (<see cref="StepGate"/>), so running requests
/// continue with the new weights from their next token and no buffer is reallocated. Another shape is a new entry.</item>
/// <item>Load time is measured (<see cref="AdapterLoadResult.Elapsed"/>).</item>
/// </list>
/// </summary>
public sealed class AdapterRegistry
{
    private readonly ModelConfig _config;
    private readonly object _gate = new();
    private Dictionary<string, ServedAdapter> _entries = new(StringComparer.Ordinal); // replaced whole, never mutated

    public AdapterRegistry(ModelConfig config) => _config = config;

    /// <summary>Held by the batcher for a whole step and by an in-place swap for its copy: a step never sees half an adapter.</summary>
    internal object StepGate { get; } = new();

    /// <summary>Loads a PEFT adapter folder under <paramref name="name"/>; with <paramref name="replace"/> an adapter of that
    /// name is replaced (in place when the shapes agree). Throws when the name is taken and <paramref name="replace"/> is false.</summary>
    public AdapterLoadResult Load(string name, string dir, bool replace = false)
    {
        var sw = Stopwatch.StartNew();
        CheckName(name);
        if (!replace && Contains(name)) throw Taken(name);
        var adapter = LoraAdapter.Load(dir, _config);
        return Put(name, adapter, dir, replace, sw);
    }

    /// <summary>Serves an adapter the host holds (created or trained in memory).</summary>
    public AdapterLoadResult Add(string name, LoraAdapter adapter, bool replace = false)
    {
        var sw = Stopwatch.StartNew();
        CheckName(name);
        if (adapter.NumLayers != _config.NumLayers)
            throw new ArgumentException($"adapter '{name}' has {adapter.NumLayers} layers, the base model {_config.NumLayers}");
        return Put(name, adapter, null, replace, sw);
    }

    private AdapterLoadResult Put(string name, LoraAdapter adapter, string? source, bool replace, Stopwatch sw)
    {
        lock (_gate)
        {
            if (_entries.TryGetValue(name, out var old))
            {
                if (!replace) throw Taken(name);
                if (SameShape(old.Adapter, adapter))
                {
                    lock (StepGate) CopyInto(old.Adapter, adapter);
                    old.Source = source;
                    return new AdapterLoadResult(name, sw.Elapsed, InPlace: true);
                }
            }
            _entries = new Dictionary<string, ServedAdapter>(_entries, StringComparer.Ordinal) { [name] = new ServedAdapter(name, adapter, source) };
            return new AdapterLoadResult(name, sw.Elapsed, InPlace: false);
        }
    }

    /// <summary>Stops serving <paramref name="name"/> (running requests finish with it); false when it is not loaded.</summary>
    public bool Unload(string name)
    {
        lock (_gate)
        {
            if (!_entries.ContainsKey(name)) return false;
            var next = new Dictionary<string, ServedAdapter>(_entries, StringComparer.Ordinal);
            next.Remove(name);
            _entries = next;
            return true;
        }
    }

    public bool Contains(string name) => _entries.ContainsKey(name);

    public int Count => _entries.Count;

    /// <summary>Served names and the folders they came from (null when added from memory), sorted by name.</summary>
    public IReadOnlyList<(string Name, string? Source)> List() =>
        [.. _entries.Values.OrderBy(e => e.Name, StringComparer.Ordinal).Select(e => (e.Name, e.Source))];

    internal ServedAdapter Resolve(string name) =>
        _entries.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"adapter '{name}' is not loaded (loaded: {(_entries.Count == 0 ? "none" : string.Join(", ", _entries.Keys.Order(StringComparer.Ordinal)))})");

    private static void CheckName(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("adapter name: expected a non-empty name");
    }

    private static ArgumentException Taken(string name) => new($"adapter '{name}' is already loaded; unload it first or replace it");

    private static bool SameShape(LoraAdapter a, LoraAdapter b)
    {
        if (a.NumLayers != b.NumLayers) return false;
        for (int l = 0; l < a.NumLayers; l++)
            foreach (var p in ProjectionNames.All)
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
}

/// <summary>One served adapter. Requests hold this object, so an unloaded adapter lives until they end.</summary>
internal sealed class ServedAdapter(string name, LoraAdapter adapter, string? source)
{
    public string Name => name;
    public LoraAdapter Adapter => adapter;
    public string? Source { get; set; } = source;
}
