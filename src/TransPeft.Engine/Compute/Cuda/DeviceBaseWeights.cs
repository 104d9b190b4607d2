using TransPeft.Cuda;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The frozen base model's bf16 tensors on one GPU, uploaded once per session and read by every
/// <see cref="CudaTransformer"/> made for it: the base's inference model, each adapter's, and LoRA training
/// contexts (whose base is frozen). Without it each of those uploaded a copy of its own, so N adapters cost N base
/// models of device memory. Full fine-tuning trains the base weights and keeps its own trainable copy.
/// <para>
/// Layout: one allocation, each tensor at a 256-byte aligned offset (<see cref="ParameterLayout.AddFrozen"/>, the
/// rule a model's own arena uses for frozen tensors). The memory belongs to the GPU's context, so a model on another
/// stream reads it directly; it is written once, synchronously, before any model exists, and never again.
/// </para>
/// <para>
/// Lifetime: reference-counted. The creator holds the first reference (the session, released on its Dispose); each
/// model takes one (<see cref="Acquire"/>) and gives it back on Dispose, so the memory is freed when the last user
/// is gone, whatever the order.
/// </para>
/// </summary>
internal sealed class DeviceBaseWeights
{
    private readonly Dictionary<Parameter, ArenaRegion> _regions;
    private readonly IComputeDevice _device;
    private readonly bool _ownsDevice;
    private readonly object _gate = new();
    private int _references = 1;

    private DeviceBaseWeights(TransformerModel model, ArenaLayout arena, Dictionary<Parameter, ArenaRegion> regions, DevicePtr basePtr,
        IComputeDevice device, bool ownsDevice)
    {
        Model = model; Arena = arena; _regions = regions; Base = basePtr; _device = device; _ownsDevice = ownsDevice;
    }

    public TransformerModel Model { get; }
    public ArenaLayout Arena { get; }
    public DevicePtr Base { get; }

    /// <summary>The device that allocated the base (tests: the emulated backend's memory accounting).</summary>
    internal IComputeDevice Device => _device;

    /// <summary>Device bytes the shared base takes.</summary>
    public long Bytes => Arena.TotalBytes;

    /// <summary>References held: the creator's and one per model object using the base (tests).</summary>
    public int References { get { lock (_gate) return _references; } }

    /// <summary>True until the last reference is released.</summary>
    public bool IsAlive { get { lock (_gate) return _references > 0; } }

    /// <summary>The device bytes <paramref name="model"/>'s bf16 base would take (for budget checks before uploading).</summary>
    public static long BytesFor(TransformerModel model) => Plan(model).Arena.TotalBytes;

    private static (ArenaLayout Arena, Dictionary<Parameter, ArenaRegion> Regions) Plan(TransformerModel model)
    {
        var arena = new ArenaLayout();
        var regions = new Dictionary<Parameter, ArenaRegion>(ReferenceEqualityComparer.Instance);
        foreach (var p in model.Parameters()) regions[p] = ParameterLayout.AddFrozen(arena, p);
        return (arena, regions);
    }

    /// <summary>
    /// Allocates and fills the shared base on <paramref name="device"/> (which it owns when <paramref name="ownsDevice"/>).
    /// Lazy parameters go up straight from the mapped checkpoint and stay lazy (<see cref="Bf16Upload"/>).
    /// </summary>
    public static DeviceBaseWeights Upload(IComputeDevice device, TransformerModel model, bool ownsDevice)
    {
        var (arena, regions) = Plan(model);
        var basePtr = device.Allocate(arena.TotalBytes);
        try
        {
            using var upload = new Bf16Upload(device);
            foreach (var (p, r) in regions) upload.Upload(basePtr.OffsetBytes(r.Offset), p);
            device.Synchronize();
        }
        catch
        {
            device.Free(basePtr);
            throw;
        }
        return new DeviceBaseWeights(model, arena, regions, basePtr, device, ownsDevice);
    }

    public bool TryGetRegion(Parameter p, out ArenaRegion region) => _regions.TryGetValue(p, out region);

    public DevicePtr Pointer(ArenaRegion region) => Base.OffsetBytes(region.Offset);

    /// <summary>One more user (a model); throws once the last reference was released.</summary>
    public DeviceBaseWeights Acquire()
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_references == 0, this);
            _references++;
        }
        return this;
    }

    /// <summary>Gives a reference back; the last one frees the device memory.</summary>
    public void Release()
    {
        lock (_gate)
        {
            if (_references == 0 || --_references > 0) return;
        }
        _device.Free(Base);
        if (_ownsDevice) _device.Dispose();
    }
}
