namespace TransPeft.Engine.IO;

/// <summary>
/// A NaN or infinity where only finite numbers make sense: in weights read from a file, in a merge result, or in
/// logits or a loss computed from them. Nothing downstream of such a value is meaningful (an argmax over NaN picks
/// token 0, an accuracy over NaN scores is noise), so it is an error, never output.
/// </summary>
public sealed class NonFiniteValueException(string where, string what, long index, float value)
    : ArithmeticException($"{where}: {what} holds a non-finite value ({Name(value)} at element {index}); the weights or the computation diverged")
{
    public string Where { get; } = where;
    public string What { get; } = what;
    public long Index { get; } = index;

    private static string Name(float v) => float.IsNaN(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity";

    /// <summary>Throws when a scalar result (a loss) is NaN or infinite; returns it otherwise.</summary>
    public static double ThrowIfNotFinite(double value, string where, string what) =>
        double.IsFinite(value) ? value : throw new NonFiniteValueException(where, what, 0, (float)value);

    /// <summary>Throws when <paramref name="values"/> holds a NaN or an infinity.</summary>
    public static void ThrowIfAny(ReadOnlySpan<float> values, string where, string what)
    {
        // A chunk's sum times 0 is 0 when every element is finite and NaN otherwise (NaN and ±inf propagate), so a
        // vectorised sum screens the chunk; only a suspect chunk (or one whose finite sum overflowed) is scanned.
        float probe;
        const int Chunk = 4096;
        for (int start = 0; start < values.Length; start += Chunk)
        {
            var part = values.Slice(start, Math.Min(Chunk, values.Length - start));
            probe = System.Numerics.Tensors.TensorPrimitives.Sum(part) * 0;
            if (float.IsNaN(probe))
                for (int i = 0; i < part.Length; i++)
                    if (!float.IsFinite(part[i])) throw new NonFiniteValueException(where, what, start + i, part[i]);
        }
    }
}
