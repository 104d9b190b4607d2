using TransPeft.Engine.IO;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Training;

/// <summary>
/// Updates the trainable parameters from their gradients. The state (moments, step count) is saved as
/// safetensors keyed by parameter name, so a resumed run continues exactly where it stopped.
/// Weight decay applies to matrices only (rank >= 2): norm weights and biases are not decayed, as in the
/// Hugging Face Trainer; every LoRA A/B is a matrix.
/// </summary>
internal abstract class Optimizer
{
    protected Optimizer(IReadOnlyList<Parameter> parameters)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in parameters)
            if (!names.Add(p.Name)) throw new ArgumentException($"trainable parameter name '{p.Name}' appears twice; optimizer state is keyed by name");
        Parameters = parameters;
    }

    public IReadOnlyList<Parameter> Parameters { get; }
    /// <summary>Updates applied so far (AdamW's t after the next update is Step + 1).</summary>
    public long Step { get; protected set; }
    public abstract string Kind { get; }

    public static bool Decays(Parameter p) => p.Shape.Length >= 2;

    /// <summary>One update with learning rate <paramref name="lr"/> from the parameters' current gradients.</summary>
    public abstract void Update(double lr);

    /// <summary>
    /// Clips the gradients to the global norm <paramref name="maxGradNorm"/> (0: no clipping), then updates with
    /// <paramref name="lr"/> when that norm is finite. Returns the norm before clipping; a non-finite one means
    /// nothing was updated (the trainer reports divergence). An optimizer whose state lives elsewhere (the GPU)
    /// does both there.
    /// </summary>
    public virtual double ClipAndUpdate(double lr, double maxGradNorm)
    {
        double norm = GradientClipping.ClipGlobalNorm(Parameters, maxGradNorm);
        if (double.IsFinite(norm)) Update(lr);
        return norm;
    }

    /// <summary>Brings the weights it updates into the parameters' host <see cref="Parameter.Data"/> before they are
    /// saved. Nothing to do for a host optimizer: Data is the weights.</summary>
    public virtual void WeightsToHost() { }

    /// <summary>After the host <see cref="Parameter.Data"/> was overwritten (a checkpoint restored), makes the weights
    /// it updates match it again. Nothing to do for a host optimizer.</summary>
    public virtual void WeightsFromHost() { }

    /// <summary>Called before <see cref="State"/> is read for saving: a device optimizer downloads its moments here.</summary>
    protected virtual void OnSaving() { }

    protected abstract IEnumerable<(string Suffix, float[] Data, Parameter Of)> State();

    public void SaveState(string path)
    {
        OnSaving();
        var w = new SafetensorsWriter().AddMetadata("optimizer", Kind).AddMetadata("step", Step.ToString(System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (suffix, data, p) in State()) w.AddFloat($"{p.Name}.{suffix}", data, p.LongShape);
        w.Save(path);
    }

    public void LoadState(string path)
    {
        using var r = SafetensorsReader.Open(path);
        if (!r.Metadata.TryGetValue("optimizer", out var kind) || kind != Kind)
            throw new SafetensorsFormatException(path, null, $"optimizer state is for '{kind ?? "(unknown)"}', this run uses '{Kind}'");
        if (!r.Metadata.TryGetValue("step", out var stepText) || !long.TryParse(stepText, out var step) || step < 0)
            throw new SafetensorsFormatException(path, null, "metadata 'step' must be a non-negative integer");
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (suffix, data, p) in State())
        {
            string key = $"{p.Name}.{suffix}";
            expected.Add(key);
            if (!r.Contains(key)) throw new SafetensorsFormatException(path, key, "optimizer state for this trainable parameter is missing");
            var info = r.GetInfo(key);
            if (info.DType != SafetensorsDType.F32 || !info.Shape.SequenceEqual(p.LongShape))
                throw new SafetensorsFormatException(path, key, $"expected F32 [{string.Join(", ", p.Shape)}], got {info.DType} [{string.Join(", ", info.Shape)}]");
            r.ReadFloat32(key).CopyTo(data, 0);
        }
        var stray = r.Names.FirstOrDefault(n => !expected.Contains(n));
        if (stray is not null) throw new SafetensorsFormatException(path, stray, "optimizer state for a parameter this model does not train");
        Step = step;
        OnLoaded();
    }

    protected virtual void OnLoaded() { }

    public static Optimizer Create(TrainingOptions o, IReadOnlyList<Parameter> parameters) => o.Optimizer switch
    {
        OptimizerKind.AdamW => new AdamW(parameters, o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay),
        OptimizerKind.Sgd => new Sgd(parameters, o.Momentum, o.WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(o), o.Optimizer, null),
    };
}
