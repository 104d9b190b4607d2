using TransPeft.Engine.IO;

namespace TransPeft.Engine.Model;

/// <summary>
/// One named fp32 tensor of a model or adapter on the CPU, row-major, with an optional gradient
/// buffer of the same size. Linear weights are [out, in] as in Hugging Face files.
/// <para>
/// A parameter loaded from a checkpoint may be lazy (<see cref="CheckpointTensor"/> set): its fp32 values are
/// read from the memory-mapped file the first time something asks for <see cref="Data"/>. The CUDA backend
/// uploads such a tensor to the device in bf16 straight from the mapping (<c>Compute/Cuda/Bf16Upload</c>), so a
/// GPU session never holds an fp32 copy of the base weights on the host.
/// </para>
/// </summary>
internal sealed class Parameter
{
    private float[]? _data;
    private readonly object? _materialiseGate;

    public Parameter(string name, int[] shape, float[] data)
    {
        Name = name;
        Shape = shape;
        Length = ElementCount(name, shape);
        _data = data.Length == Length ? data : throw new ArgumentException($"parameter '{name}': {data.Length} values for shape [{string.Join(",", shape)}]");
    }

    /// <summary>A view of tensors owned elsewhere (the BERT encoder's), sharing their value and gradient arrays.</summary>
    public Parameter(string name, int[] shape, float[] data, float[] grad) : this(name, shape, data)
    {
        Grad = grad.Length == data.Length ? grad : throw new ArgumentException($"parameter '{name}': gradient of {grad.Length} values for {data.Length}");
    }

    /// <summary>A lazy parameter: the values stay in the checkpoint until <see cref="Data"/> is first read.</summary>
    public Parameter(string name, int[] shape, CheckpointTensor source)
    {
        Name = name;
        Shape = shape;
        Length = ElementCount(name, shape);
        if (source.Info.ElementCount != Length) throw new ArgumentException($"parameter '{name}': the checkpoint tensor holds {source.Info.ElementCount} values for shape [{string.Join(",", shape)}]");
        CheckpointTensor = source;
        _materialiseGate = new object();
    }

    public string Name { get; }
    public int[] Shape { get; }
    public int Length { get; }

    /// <summary>
    /// The fp32 values. For a lazy parameter the first read converts the checkpoint tensor (and checks it is finite);
    /// later reads return the same array. Thread-safe.
    /// </summary>
    public float[] Data => _data ?? Materialise();

    /// <summary>Where the values come from until they are materialised (null for a parameter made from an array).</summary>
    public CheckpointTensor? CheckpointTensor { get; }

    /// <summary>False for a lazy parameter whose fp32 values have not been read yet.</summary>
    public bool IsMaterialised => _data is not null;

    /// <summary>Gradient accumulator; null for frozen parameters (no gradient is ever computed for them).</summary>
    public float[]? Grad { get; private set; }
    public bool RequiresGrad => Grad is not null;

    public static Parameter Zeros(string name, params int[] shape) => new(name, shape, new float[shape.Aggregate(1, (a, b) => a * b)]);

    public void EnableGrad() => Grad ??= new float[Length];
    public void DisableGrad() => Grad = null;
    public void ZeroGrad() { if (Grad is not null) Array.Clear(Grad); }
    public long[] LongShape => Array.ConvertAll(Shape, x => (long)x);

    /// <summary>A fresh copy of the values. A lazy parameter is read from its checkpoint and stays lazy (a full
    /// fine-tuning copy of a GPU session's weights does not leave an fp32 copy behind in the session's model).</summary>
    public float[] CopyData()
    {
        if (_data is null && CheckpointTensor is { } t && t.Owner.TryLease())
        {
            try { return t.ReadFloat32(); }
            finally { t.Owner.EndLease(); }
        }
        return (float[])Data.Clone();
    }

    private float[] Materialise()
    {
        lock (_materialiseGate!)
        {
            if (_data is not null) return _data;
            var data = CheckpointTensor!.ReadFloat32();
            _data = data;
            CheckpointTensor.Owner.Materialised();
            return data;
        }
    }

    private static int ElementCount(string name, int[] shape)
    {
        long n = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"parameter '{name}': negative dimension in shape [{string.Join(",", shape)}]");
            n *= d;
            if (n > int.MaxValue) throw new ArgumentException($"parameter '{name}': shape [{string.Join(",", shape)}] holds more than {int.MaxValue} values");
        }
        return (int)n;
    }
}
