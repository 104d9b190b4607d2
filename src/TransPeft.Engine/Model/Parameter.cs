namespace TransPeft.Engine.Model;

/// <summary>
/// One named fp32 tensor of a model or adapter on the CPU, row-major, with an optional gradient
/// buffer of the same size. Linear weights are [out, in] as in Hugging Face files.
/// </summary>
internal sealed class Parameter(string name, int[] shape, float[] data)
{
    public string Name { get; } = name;
    public int[] Shape { get; } = shape;
    public float[] Data { get; } = data.Length == shape.Aggregate(1, (a, b) => a * b)
        ? data : throw new ArgumentException($"parameter '{name}': {data.Length} values for shape [{string.Join(",", shape)}]");
    /// <summary>Gradient accumulator; null for frozen parameters (no gradient is ever computed for them).</summary>
    public float[]? Grad { get; private set; }
    public int Length => Data.Length;
    public bool RequiresGrad => Grad is not null;

    /// <summary>A view of tensors owned elsewhere (the BERT encoder's), sharing their value and gradient arrays.</summary>
    public Parameter(string name, int[] shape, float[] data, float[] grad) : this(name, shape, data)
    {
        Grad = grad.Length == data.Length ? grad : throw new ArgumentException($"parameter '{name}': gradient of {grad.Length} values for {data.Length}");
    }

    public static Parameter Zeros(string name, params int[] shape) => new(name, shape, new float[shape.Aggregate(1, (a, b) => a * b)]);

    public void EnableGrad() => Grad ??= new float[Data.Length];
    public void DisableGrad() => Grad = null;
    public void ZeroGrad() { if (Grad is not null) Array.Clear(Grad); }
    public long[] LongShape => Array.ConvertAll(Shape, x => (long)x);
}
