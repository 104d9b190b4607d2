using TransPeft.Cuda;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The device side of a session's adapters for the KV-cached decoder (S-LoRA / punica style): a pool of
/// <see cref="Capacity"/> slots, each holding one adapter's every module padded to the pool's largest rank
/// <see cref="Rank"/>, laid out CONTIGUOUSLY in the slot so that bringing an adapter to the device is ONE
/// asynchronous copy of its pinned host image:
/// <code>
///   slot s (SlotBytes, 256-byte multiple):  scaling fp32 [modules] | module 0: A [rmax, in] bf16, B [out, rmax] bf16 | module 1 ...
/// </code>
/// The modules are the (layer, projection) pairs any known adapter adapts (<see cref="Adapts"/>); an adapter that
/// does not adapt one has zeros there and scaling 0, so its rows get exact zeros added. The BGMV kernels index a slot
/// through <c>slot_stride = SlotBytes / 2</c> (bf16 elements) and the scalings through <c>scale_stride = SlotBytes / 4</c>.
/// <para>
/// Every adapter the pool has seen keeps its image in pinned host memory: evicting it from the device (the least
/// recently used adapter that the running batch does not use, when every slot is taken) costs nothing, and using it
/// again is one upload. An adapter of a higher rank or with a module no known adapter has re-plans the pool
/// (<see cref="LayoutVersion"/> changes: every image is rebuilt and every resident adapter re-uploaded on next use;
/// captured decode graphs hold the old pointers and must be dropped). Not thread-safe: the decoder's lock guards it.
/// </para>
/// </summary>
internal sealed unsafe class CudaAdapterPool : IDisposable
{
    private sealed class Entry(LoraAdapter adapter)
    {
        public LoraAdapter Adapter { get; } = adapter;
        public nint Image;          // pinned host image of one slot (0 until built for the current layout)
        public int ImageLayout = -1; // the LayoutVersion the image was built for
        public int Version;         // bumped by Invalidate (hot swap): the image is stale when BuiltVersion differs
        public int BuiltVersion = -1;
        public int Slot = -1;       // device slot, or -1 when only the host image exists
        public long LastUse;
    }

    private readonly IComputeDevice _device;
    private readonly ModelConfig _config;
    private readonly Dictionary<LoraAdapter, Entry> _entries = new(ReferenceEqualityComparer.Instance);
    private Entry?[] _residents;
    private DevicePtr _arena;
    private int[] _moduleOffset = [];        // per (layer * 7 + projection): element offset of A in a slot, or -1
    private int[] _moduleIndex = [];         // per (layer * 7 + projection): index of its scaling in a slot
    private int _modules;
    private long _useClock;

    public CudaAdapterPool(IComputeDevice device, ModelConfig config, int capacity)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity), $"the device adapter pool needs at least one slot, got {capacity}");
        _device = device;
        _config = config;
        Capacity = capacity;
        _residents = new Entry?[capacity];
    }

    /// <summary>Most adapters on the device at once.</summary>
    public int Capacity { get; }

    /// <summary>The padded rank of every slot (0 before the first adapter).</summary>
    public int Rank { get; private set; }

    /// <summary>Bytes of one slot (a multiple of 256).</summary>
    public long SlotBytes { get; private set; }

    /// <summary>Changes whenever the device layout (rank, modules, arena) changes.</summary>
    public int LayoutVersion { get; private set; }

    /// <summary>Adapter uploads so far (tests: eviction and re-upload; a hot swap is one more).</summary>
    public int Uploads { get; private set; }

    /// <summary>Evictions so far.</summary>
    public int Evictions { get; private set; }

    /// <summary>True when some known adapter adapts projection <paramref name="p"/> of layer <paramref name="layer"/>.</summary>
    public bool Adapts(int layer, Projection p) => _moduleOffset.Length > 0 && _moduleOffset[layer * ProjectionNames.All.Length + (int)p] >= 0;

    /// <summary>Device address of module (layer, p)'s A in slot 0 (B follows A), and its scaling in slot 0.</summary>
    public (DevicePtr A, DevicePtr B, DevicePtr Scaling) Module(int layer, Projection p)
    {
        int m = layer * ProjectionNames.All.Length + (int)p;
        long a = _moduleOffset[m];
        var (inDim, _) = LoraAdapter.Dims(_config, p);
        int index = _moduleIndex[m];
        return (_arena.OffsetBytes(a * 2), _arena.OffsetBytes((a + (long)Rank * inDim) * 2), _arena.OffsetBytes(index * 4L));
    }

    /// <summary>Elements of bf16 between two slots (the kernels' slot_stride) and fp32 words (scale_stride).</summary>
    public long SlotStrideBf16 => SlotBytes / 2;
    public int ScaleStride => checked((int)(SlotBytes / 4));

    /// <summary>The device slot holding <paramref name="adapter"/>, uploading it first when it is not resident (evicting
    /// the least recently used adapter not used at <paramref name="stamp"/> when the pool is full). Call
    /// <see cref="BeginUse"/> once per step first; every adapter acquired under one stamp stays resident for the step.</summary>
    public int Acquire(LoraAdapter adapter, long stamp)
    {
        if (!_entries.TryGetValue(adapter, out var e))
        {
            e = new Entry(adapter);
            _entries.Add(adapter, e);
            // Only a new adapter can fail to fit: a layout covers every adapter known when it was planned (Replan), and
            // an adapter's modules and ranks never change (a hot swap keeps the shape).
            if (!Fits(adapter)) Replan();
        }
        e.LastUse = stamp;
        if (e.Slot >= 0 && e.BuiltVersion == e.Version && e.ImageLayout == LayoutVersion) return e.Slot;
        if (e.ImageLayout != LayoutVersion || e.BuiltVersion != e.Version) BuildImage(e);
        if (e.Slot < 0) e.Slot = FreeSlot(stamp);
        _residents[e.Slot] = e;
        _device.UploadAsync(_arena.OffsetBytes(e.Slot * SlotBytes), e.Image, SlotBytes);
        Uploads++;
        return e.Slot;
    }

    /// <summary>A new step's stamp: adapters acquired with it are the running batch's and are not evicted during it.</summary>
    public long BeginUse() => ++_useClock;

    /// <summary>The adapter's weights changed in place (a hot swap): its image is rebuilt and re-uploaded on next use.</summary>
    public void Invalidate(LoraAdapter adapter)
    {
        if (_entries.TryGetValue(adapter, out var e)) e.Version++;
    }

    /// <summary>Drops an adapter the session no longer serves: its slot and its pinned image are freed. A request still
    /// running with it just brings it back on its next step.</summary>
    public void Forget(LoraAdapter adapter)
    {
        if (!_entries.Remove(adapter, out var e)) return;
        if (e.Slot >= 0) _residents[e.Slot] = null;
        if (e.Image != 0) _device.FreeHost(e.Image);
    }

    /// <summary>Whether this adapter fits the current layout (rank and modules).</summary>
    private bool Fits(LoraAdapter adapter)
    {
        if (Rank == 0) return false;
        foreach (var m in adapter.Modules())
            if (m.Rank > Rank || !Adapts(m.Layer, m.Projection)) return false;
        return true;
    }

    /// <summary>New layout covering every known adapter: rank = the largest, modules = the union; the arena is
    /// reallocated, every slot emptied, every image marked stale.</summary>
    private void Replan()
    {
        int projections = ProjectionNames.All.Length, count = _config.NumLayers * projections;
        var adapts = new bool[count];
        int rank = 0;
        foreach (var e in _entries.Values)
            foreach (var m in e.Adapter.Modules())
            {
                adapts[m.Layer * projections + (int)m.Projection] = true;
                rank = Math.Max(rank, m.Rank);
            }
        int modules = adapts.Count(x => x);
        var offsets = new int[count];
        var indices = new int[count];
        for (int i = 0, k = 0; i < count; i++) indices[i] = adapts[i] ? k++ : -1;
        long elems = ArenaLayout.AlignUp(modules * 4L) / 2; // the scalings, then the modules (bf16 elements)
        for (int i = 0; i < count; i++)
        {
            if (!adapts[i]) { offsets[i] = -1; continue; }
            var (inDim, outDim) = LoraAdapter.Dims(_config, (Projection)(i % projections));
            offsets[i] = checked((int)elems);
            elems += (long)rank * (inDim + outDim);
        }
        long slotBytes = ArenaLayout.AlignUp(elems * 2);
        if (_arena.Address != 0) _device.Free(_arena);
        _arena = default;
        _arena = _device.Allocate(slotBytes * Capacity);
        _moduleOffset = offsets;
        _moduleIndex = indices;
        _modules = modules;
        Rank = rank;
        SlotBytes = slotBytes;
        Array.Clear(_residents);
        foreach (var e in _entries.Values) e.Slot = -1;
        LayoutVersion++;
    }

    private int FreeSlot(long stamp)
    {
        for (int s = 0; s < _residents.Length; s++) if (_residents[s] is null) return s;
        int victim = -1;
        for (int s = 0; s < _residents.Length; s++)
            if (_residents[s]!.LastUse != stamp && (victim < 0 || _residents[s]!.LastUse < _residents[victim]!.LastUse)) victim = s;
        if (victim < 0)
            throw new InvalidOperationException($"this decode step uses more distinct adapters than the device adapter pool holds ({Capacity}, SessionOptions.MaxResidentAdapters): raise it or batch fewer adapters per step");
        _residents[victim]!.Slot = -1;
        _residents[victim] = null;
        Evictions++;
        return victim;
    }

    /// <summary>Packs the adapter into its pinned slot image: scalings, then each module's A rows and B columns
    /// padded with zeros to the pool rank, in bf16.</summary>
    private void BuildImage(Entry e)
    {
        if (e.Image == 0 || e.ImageLayout != LayoutVersion)
        {
            if (e.Image != 0) _device.FreeHost(e.Image);
            e.Image = 0;
            e.Image = _device.AllocateHost(SlotBytes);
        }
        var bytes = new Span<byte>((void*)e.Image, checked((int)SlotBytes));
        bytes.Clear();
        var scalings = new Span<float>((void*)e.Image, _modules);
        var bf = new Span<ushort>((void*)e.Image, checked((int)(SlotBytes / 2)));
        int projections = ProjectionNames.All.Length;
        foreach (var m in e.Adapter.Modules())
        {
            int i = m.Layer * projections + (int)m.Projection;
            scalings[_moduleIndex[i]] = m.Scaling;
            int off = _moduleOffset[i], r = m.Rank, inDim = m.In, outDim = m.Out;
            var a = m.A.Data; var b = m.B.Data;
            for (int j = 0; j < r; j++)
                for (int k = 0; k < inDim; k++) bf[off + j * inDim + k] = BFloat16.FromSingle(a[j * inDim + k]);
            int bOff = off + Rank * inDim;
            for (int o = 0; o < outDim; o++)
                for (int j = 0; j < r; j++) bf[bOff + o * Rank + j] = BFloat16.FromSingle(b[o * r + j]);
        }
        e.ImageLayout = LayoutVersion;
        e.BuiltVersion = e.Version;
    }

    public void Dispose()
    {
        foreach (var e in _entries.Values)
            if (e.Image != 0) _device.FreeHost(e.Image);
        _entries.Clear();
        if (_arena.Address != 0) _device.Free(_arena);
        _arena = default;
    }
}
