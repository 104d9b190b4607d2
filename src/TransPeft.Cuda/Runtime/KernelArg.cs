using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TransPeft.Cuda;

/// <summary>
/// One kernel argument, held by value in 16 bytes. <c>cuLaunchKernel</c> takes an array of pointers, one per
/// parameter, and copies <c>sizeof(parameter)</c> bytes from each; a value stored little-endian at offset 0
/// of this slot is therefore read correctly whatever its size (1 to 16 bytes). Implicit conversions let a launch
/// read like a call: <c>fn.Launch(grid, block, 0, stream, outBuf, inBuf, n, 1e-5f)</c>; the arguments live in
/// the caller's stack frame (a <c>params ReadOnlySpan</c>), so launching allocates nothing.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public readonly struct KernelArg
{
    private readonly ulong _lo;
    private readonly ulong _hi;

    private KernelArg(ulong lo, ulong hi = 0)
    {
        _lo = lo;
        _hi = hi;
    }

    /// <summary>Any unmanaged value of at most 16 bytes (a small struct the kernel takes by value).</summary>
    public static unsafe KernelArg From<T>(T value) where T : unmanaged
    {
        if (sizeof(T) > 16) throw new ArgumentException($"A kernel argument passed by value holds at most 16 bytes; {typeof(T).Name} has {sizeof(T)}. Pass a device pointer instead.", nameof(value));
        KernelArg a = default;
        Unsafe.WriteUnaligned(ref Unsafe.As<KernelArg, byte>(ref a), value);
        return a;
    }

    public static implicit operator KernelArg(int v) => new((uint)v);
    public static implicit operator KernelArg(uint v) => new(v);
    public static implicit operator KernelArg(long v) => new((ulong)v);
    public static implicit operator KernelArg(ulong v) => new(v);
    public static implicit operator KernelArg(float v) => new(BitConverter.SingleToUInt32Bits(v));
    public static implicit operator KernelArg(double v) => new(BitConverter.DoubleToUInt64Bits(v));
    public static implicit operator KernelArg(bool v) => new(v ? 1u : 0u);
    public static implicit operator KernelArg(DevicePtr p) => new(p.Address);

    /// <summary>The raw 16 bytes (tests and diagnostics).</summary>
    public (ulong Low, ulong High) Bits => (_lo, _hi);
}
