using System.Runtime.InteropServices;
using TransPeft.Cuda;

namespace TransPeft.Engine.Compute.Cuda;

/// <summary>
/// One kernel argument with its C type. <see cref="Value"/> is the 16-byte slot <c>cuLaunchKernel</c> reads from
/// (it sits at offset 0, so a pointer to the struct is a pointer to the value); <see cref="Kind"/> lets every launch
/// be checked against the kernel's declared parameter list (<see cref="KernelCatalog"/>) before it reaches the
/// driver, so an int passed where the kernel wants a float fails loudly instead of computing garbage.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal readonly struct KernelArgument
{
    public readonly KernelArg Value;
    public readonly ArgKind Kind;

    private KernelArgument(KernelArg value, ArgKind kind)
    {
        Value = value;
        Kind = kind;
    }

    public static KernelArgument Ptr(DevicePtr p) => new(p, ArgKind.Ptr);
    public static KernelArgument Null => new(DevicePtr.Null, ArgKind.Ptr);
    public static KernelArgument I32(int v) => new(v, ArgKind.I32);
    public static KernelArgument I64(long v) => new(v, ArgKind.I64);
    public static KernelArgument U32(uint v) => new(v, ArgKind.U32);
    public static KernelArgument U64(ulong v) => new(v, ArgKind.U64);
    public static KernelArgument F32(float v) => new(v, ArgKind.F32);

    public static implicit operator KernelArgument(DevicePtr p) => Ptr(p);

    /// <summary>The value as the kernel sees it (tests and the emulator).</summary>
    public DevicePtr AsPtr => new(Value.Bits.Low);
    public int AsI32 => (int)(uint)Value.Bits.Low;
    public long AsI64 => (long)Value.Bits.Low;
    public uint AsU32 => (uint)Value.Bits.Low;
    public ulong AsU64 => Value.Bits.Low;
    public float AsF32 => BitConverter.UInt32BitsToSingle((uint)Value.Bits.Low);

    public override string ToString() => Kind switch
    {
        ArgKind.Ptr => AsPtr.ToString(),
        ArgKind.I32 => AsI32.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ArgKind.I64 => AsI64.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ArgKind.U32 => AsU32.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ArgKind.U64 => AsU64.ToString(System.Globalization.CultureInfo.InvariantCulture),
        _ => AsF32.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
    };
}
