using System.Runtime.InteropServices;
using TransPeft.Cuda;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>Test tensors on a device: uploads (bf16 inputs are rounded, and the rounded values returned so the CPU
/// reference sees exactly what the kernel sees), NaN-poisoned outputs, downloads. Frees everything on dispose.</summary>
internal sealed class DeviceScratch(IComputeDevice device) : IDisposable
{
    private readonly List<DevicePtr> _owned = [];

    public IComputeDevice Device { get; } = device;

    public DevicePtr Alloc(long bytes)
    {
        var p = Device.Allocate(Math.Max(bytes, 4));
        _owned.Add(p);
        return p;
    }

    /// <summary>A fresh buffer of 0xFF bytes: NaN as bf16 and as fp32, -1 as int32.</summary>
    public DevicePtr Poisoned(long bytes)
    {
        var p = Alloc(bytes);
        var ff = new byte[Math.Max(bytes, 4)];
        Array.Fill(ff, (byte)0xFF);
        Device.Upload<byte>(p, ff);
        return p;
    }

    public DevicePtr PoisonedBf16(long n) => Poisoned(n * 2);
    public DevicePtr PoisonedF32(long n) => Poisoned(n * 4);

    /// <summary>Uploads <paramref name="values"/> as bf16, rounding them in place to what the device holds.</summary>
    public DevicePtr Bf16(float[] values)
    {
        var bits = new ushort[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            bits[i] = BFloat16.FromSingle(values[i]);
            values[i] = BFloat16.ToSingle(bits[i]);
        }
        var p = Alloc((long)values.Length * 2);
        Device.Upload<ushort>(p, bits);
        return p;
    }

    public DevicePtr F32(float[] values) => Upload(values);

    /// <summary>A step's <see cref="StepParams"/> in device memory, as the kernels read it.</summary>
    public DevicePtr Step(StepParams step) => Upload(new[] { step });
    public DevicePtr I32(int[] values) => Upload(values);
    public DevicePtr F64(double[] values) => Upload(values);

    private DevicePtr Upload<T>(T[] values) where T : unmanaged
    {
        var p = Alloc((long)values.Length * Marshal.SizeOf<T>());
        Device.Upload<T>(p, values);
        return p;
    }

    public float[] ReadBf16(DevicePtr p, long n)
    {
        var bits = new ushort[n];
        Device.Download<ushort>(bits, p);
        return Array.ConvertAll(bits, BFloat16.ToSingle);
    }

    public float[] ReadF32(DevicePtr p, long n)
    {
        var r = new float[n];
        Device.Download<float>(r, p);
        return r;
    }

    public int[] ReadI32(DevicePtr p, long n)
    {
        var r = new int[n];
        Device.Download<int>(r, p);
        return r;
    }

    public static float[] Random(int n, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        return a;
    }

    public static double MaxAbs(ReadOnlySpan<float> v)
    {
        double m = 0;
        foreach (var x in v) m = Math.Max(m, Math.Abs(x));
        return m;
    }

    public void Dispose()
    {
        foreach (var p in _owned) Device.Free(p);
        _owned.Clear();
        Device.Dispose();
    }
}
