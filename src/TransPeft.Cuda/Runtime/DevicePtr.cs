namespace TransPeft.Cuda;

/// <summary>A device address (<c>CUdeviceptr</c>). Plain value: it owns nothing.</summary>
public readonly record struct DevicePtr(ulong Address)
{
    public static DevicePtr Null => default;

    public bool IsNull => Address == 0;

    /// <summary>The address <paramref name="bytes"/> further on.</summary>
    public DevicePtr OffsetBytes(long bytes) => new((ulong)((long)Address + bytes));

    public override string ToString() => $"0x{Address:x}";
}
