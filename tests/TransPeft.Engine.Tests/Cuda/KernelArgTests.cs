using System.Runtime.InteropServices;
using TransPeft.Cuda;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>Kernel arguments are stored so that cuLaunchKernel, reading sizeof(parameter) bytes from the start
/// of each slot, sees exactly the value passed.</summary>
public sealed class KernelArgTests
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Twelve { public int A, B, C; }

    [StructLayout(LayoutKind.Sequential)]
    private struct Twenty { public long A, B; public int C; }

    [Fact]
    public void ScalarsAreLittleEndianAtTheStartOfTheSlot()
    {
        Assert.Equal((0xFFFF_FFFFUL, 0UL), ((KernelArg)(-1)).Bits); // an int kernel parameter reads 4 bytes: -1
        Assert.Equal(((ulong)BitConverter.SingleToUInt32Bits(1.5f), 0UL), ((KernelArg)1.5f).Bits);
        Assert.Equal((BitConverter.DoubleToUInt64Bits(-2.25), 0UL), ((KernelArg)(-2.25)).Bits);
        Assert.Equal((0xFFFF_FFFF_FFFF_FFFEUL, 0UL), ((KernelArg)(-2L)).Bits);
        Assert.Equal((1UL, 0UL), ((KernelArg)true).Bits);
        Assert.Equal((0xdead_beef_0000UL, 0UL), ((KernelArg)new DevicePtr(0xdead_beef_0000)).Bits);
    }

    [Fact]
    public void SmallStructsFitAndLargeOnesAreRefused()
    {
        var bits = KernelArg.From(new Twelve { A = 1, B = 2, C = 3 }).Bits;
        Assert.Equal((1UL | (2UL << 32), 3UL), bits);
        var e = Assert.Throws<ArgumentException>(() => KernelArg.From(new Twenty()));
        Assert.Contains("16 bytes", e.Message);
        Assert.Equal(16, Marshal.SizeOf<KernelArg>());
    }

    [Fact]
    public void GridSizesCoverEveryItem()
    {
        Assert.Equal(4u, Dim3.BlocksFor(1000, 256));
        Assert.Equal(1u, Dim3.BlocksFor(1, 256));
        Assert.Equal(0u, Dim3.BlocksFor(0, 256));
        Assert.Equal(new Dim3(3, 2, 1), (Dim3)(3, 2));
        Assert.Throws<OverflowException>(() => (Dim3)(-1));
    }
}
