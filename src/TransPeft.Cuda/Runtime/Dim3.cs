namespace TransPeft.Cuda;

/// <summary>Grid or block dimensions of a kernel launch. An int converts to (x, 1, 1).</summary>
public readonly record struct Dim3(uint X, uint Y = 1, uint Z = 1)
{
    public static implicit operator Dim3(uint x) => new(x);

    public static implicit operator Dim3(int x) => new(checked((uint)x));

    public static implicit operator Dim3((int X, int Y) d) => new(checked((uint)d.X), checked((uint)d.Y));

    public static implicit operator Dim3((int X, int Y, int Z) d) => new(checked((uint)d.X), checked((uint)d.Y), checked((uint)d.Z));

    /// <summary>How many blocks of <paramref name="blockSize"/> cover <paramref name="n"/> items.</summary>
    public static uint BlocksFor(long n, int blockSize) => checked((uint)((n + blockSize - 1) / blockSize));

    public override string ToString() => $"({X},{Y},{Z})";
}
