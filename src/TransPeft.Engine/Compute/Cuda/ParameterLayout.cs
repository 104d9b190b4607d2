using TransPeft.Engine.Model;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// The parameter arena of a model on the GPU, laid out once:
/// <code>
///   [bf16 copy of each frozen tensor] [trainable bf16 block] [fp32 master block] [fp32 gradient block] [fp64 RoPE inv_freq]
/// </code>
/// The three trainable blocks share one element indexing, each tensor padded to <see cref="TrainablePadding"/>
/// elements (the padding stays zero: it adds nothing to norms and AdamW keeps it at zero), so refreshing every
/// bf16 copy, zeroing every gradient, downloading every gradient and the global gradient norm are one operation
/// each. Trainable tensors that decay (matrices, <see cref="Optimizer.Decays"/>) come first, so AdamW needs
/// one launch per weight-decay group.
/// <para>
/// With a session's <see cref="DeviceBaseWeights"/>, the frozen base tensors are not copied into this arena: their
/// <see cref="DeviceParameter"/> points into the shared base (<see cref="DeviceParameter.Shared"/>), laid out there by
/// the same rule (<see cref="AddFrozen"/>). Only what is the model's own (adapter tensors, trainable blocks, RoPE
/// table) stays here.
/// </para>
/// </summary>
internal sealed class ParameterLayout
{
    /// <summary>Elements each trainable tensor is padded to a multiple of (256 bytes of bf16).</summary>
    public const int TrainablePadding = 128;

    private readonly Dictionary<Parameter, DeviceParameter> _byParameter = new(ReferenceEqualityComparer.Instance);

    private ParameterLayout(ArenaLayout arena) { Arena = arena; }

    public ArenaLayout Arena { get; }

    /// <summary>Every parameter, frozen ones first (own or shared), then trainable ones in block order.</summary>
    public DeviceParameter[] Parameters { get; private set; } = [];

    /// <summary>The trainable parameters in block order (decaying first).</summary>
    public DeviceParameter[] Trainable { get; private set; } = [];

    public ArenaRegion TrainableBf16 { get; private set; }
    public ArenaRegion Master { get; private set; }
    public ArenaRegion Grad { get; private set; }
    public ArenaRegion InvFreq { get; private set; }

    /// <summary>Padded element count of the trainable blocks.</summary>
    public long TrainableElements => Master.Elements;

    /// <summary>The first <see cref="DecayingElements"/> elements of the trainable blocks belong to decaying tensors.</summary>
    public long DecayingElements { get; private set; }

    public DeviceParameter this[Parameter p] => _byParameter.TryGetValue(p, out var d) ? d
        : throw new KeyNotFoundException($"parameter '{p.Name}' is not on the device");

    public bool Contains(Parameter p) => _byParameter.ContainsKey(p);

    public static long Padded(long length) => (length + TrainablePadding - 1) / TrainablePadding * TrainablePadding;

    /// <summary>A frozen tensor's bf16 copy in an arena: unpadded, at the arena's alignment (one rule for a model's own
    /// arena and the shared base).</summary>
    public static ArenaRegion AddFrozen(ArenaLayout arena, Parameter p) => arena.Add(p.Name + ".bf16", p.Length, 2);

    /// <param name="all">Every tensor the model reads (base weights, then adapter tensors), each once.</param>
    /// <param name="trainable">The trainable ones, in the trainer's order.</param>
    /// <param name="ropePairs">head_dim / 2: the length of the fp64 inverse-frequency table.</param>
    /// <param name="shared">The session's shared base: frozen tensors it holds are read from there, not copied.</param>
    public static ParameterLayout Plan(IReadOnlyList<Parameter> all, IReadOnlyList<Parameter> trainable, int ropePairs, DeviceBaseWeights? shared = null)
    {
        var isTrainable = new HashSet<Parameter>(trainable, ReferenceEqualityComparer.Instance);
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var p in all)
            if (!seen.Add(p)) throw new ArgumentException($"parameter '{p.Name}' is listed twice");
        foreach (var p in trainable)
            if (!seen.Contains(p)) throw new ArgumentException($"trainable parameter '{p.Name}' is not one of the model's tensors");

        var arena = new ArenaLayout();
        var layout = new ParameterLayout(arena);
        var list = new List<DeviceParameter>();
        foreach (var p in all)
        {
            if (isTrainable.Contains(p)) continue;
            var d = shared is not null && shared.TryGetRegion(p, out var region)
                ? new DeviceParameter(p, region, -1, shared: true)
                : new DeviceParameter(p, AddFrozen(arena, p), -1);
            list.Add(d);
        }

        var ordered = trainable.Where(Optimizer.Decays).Concat(trainable.Where(p => !Optimizer.Decays(p))).ToList();
        long index = 0, decaying = 0;
        var indices = new List<(Parameter P, long Index)>();
        foreach (var p in ordered)
        {
            indices.Add((p, index));
            index += Padded(p.Length);
            if (Optimizer.Decays(p)) decaying = index;
        }
        layout.TrainableBf16 = arena.Add("trainable.bf16", index, 2);
        layout.Master = arena.Add("trainable.master", index, 4);
        layout.Grad = arena.Add("trainable.grad", index, 4);
        layout.InvFreq = arena.Add("rope.inv_freq", ropePairs, 8);
        layout.DecayingElements = decaying;

        var trainableList = new List<DeviceParameter>();
        foreach (var (p, i) in indices)
        {
            var bf16 = new ArenaRegion(p.Name + ".bf16", layout.TrainableBf16.Offset + i * 2, p.Length, 2);
            var d = new DeviceParameter(p, bf16, i);
            trainableList.Add(d);
            list.Add(d);
        }
        layout.Parameters = list.ToArray();
        layout.Trainable = trainableList.ToArray();
        foreach (var d in list) layout._byParameter[d.Host] = d;
        return layout;
    }
}
