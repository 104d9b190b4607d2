using TransPeft.Cuda;
using TransPeft.Cuda.Compile;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.IO;
using TransPeft.KernelEmulation;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// The pieces of cuda-emulated that are not kernels: the host GEMM keeps cuBLAS's semantics (column-major, op flags,
/// leading dimensions, fp32 accumulation, C unread when beta = 0, bf16 round-to-nearest-even on store); the backend
/// and the library builder refuse with one line, never an exception; the generated trampolines cover every kernel.
/// </summary>
public sealed unsafe class HostEmulationTests
{
    [Theory]
    [InlineData(false, false, false)]
    [InlineData(false, true, false)]
    [InlineData(true, false, true)]
    [InlineData(true, true, true)]
    public void HostGemmComputesCublasColumnMajorSemanticsWithPaddedLeadingDimensions(bool transA, bool transB, bool bf16Out)
    {
        const int m = 5, n = 7, k = 6, pad = 3;
        var rng = new Random(11 + (transA ? 4 : 0) + (transB ? 2 : 0));
        // Row-major shapes as the backend calls Gemm; the padding between rows must never be read or written.
        var (aRows, aCols) = transA ? (k, m) : (m, k);
        var (bRows, bCols) = transB ? (n, k) : (k, n);
        int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
        var a = Bf16Values(rng, aRows * lda);
        var b = Bf16Values(rng, bRows * ldb);
        var c = bf16Out ? new ushort[m * ldc] : null;
        var cf = bf16Out ? null : new float[m * ldc];
        if (c is not null) Array.Fill(c, (ushort)0x7fc1); // NaN: with beta = 0 it must not leak into the result
        if (cf is not null) Array.Fill(cf, float.NaN);

        fixed (ushort* pa = a, pb = b, pc = c)
        fixed (float* pcf = cf)
        {
            var cPtr = new DevicePtr(bf16Out ? (ulong)pc : (ulong)pcf);
            var g = ColumnMajorGemm.FromRowMajor(transA, transB, m, n, k, new DevicePtr((ulong)pa), lda, new DevicePtr((ulong)pb), ldb, cPtr, ldc);
            HostGemm.Run(g, 0.5f, 0f, CudaDataType.R16BF, bf16Out ? CudaDataType.R16BF : CudaDataType.R32F, (_, _, _) => { });
        }
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double want = 0;
                for (int p = 0; p < k; p++)
                    want += BFloat16.ToSingle(transA ? a[p * lda + i] : a[i * lda + p]) * (double)BFloat16.ToSingle(transB ? b[j * ldb + p] : b[p * ldb + j]);
                want *= 0.5;
                float got = bf16Out ? BFloat16.ToSingle(c![i * ldc + j]) : cf![i * ldc + j];
                // fp32 accumulation, then (bf16 output) one round to nearest even.
                double tol = bf16Out ? Math.Abs(want) / 256 + 1e-6 : 1e-5 * (1 + Math.Abs(want));
                Assert.True(Math.Abs(got - want) <= tol, $"C[{i},{j}] = {got}, want {want}");
            }
        // Padding columns keep their poison.
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++)
                Assert.True(bf16Out ? c![i * ldc + j] == 0x7fc1 : float.IsNaN(cf![i * ldc + j]));
    }

    [Theory]
    [InlineData(0f, 1f + 1f / 64)]  // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: ties go to the even one
    [InlineData(1f, 2f + 1f / 64)]  // beta = 1 adds the old C (1) before rounding: 2 + 3·2^-8 rounds to 2 + 2^-6
    public void HostGemmAddsBetaTimesCThenRoundsBf16ToNearestEven(float oldC, float want)
    {
        float[] a = [1f], b = [1f + 3f / 256];
        var c = new ushort[] { BFloat16.FromSingle(oldC) };
        fixed (float* pa = a, pb = b)
        fixed (ushort* pc = c)
        {
            var g = ColumnMajorGemm.FromRowMajor(false, false, 1, 1, 1, new DevicePtr((ulong)pa), 1, new DevicePtr((ulong)pb), 1, new DevicePtr((ulong)pc), 1);
            HostGemm.Run(g, 1f, 1f, CudaDataType.R32F, CudaDataType.R16BF, (_, _, _) => { });
        }
        Assert.Equal(want, BFloat16.ToSingle(c[0]));
    }

    [Fact]
    public void TryCreateEmulatedRefusesAMissingOrForeignLibraryWithOneLine()
    {
        var missing = Path.Combine(Path.GetTempPath(), $"tpeft-no-such-{Guid.NewGuid():N}.so");
        Assert.False(CudaBackend.TryCreateEmulated(missing, out var none, out var reason));
        Assert.Null(none);
        Assert.Equal($"no emulated kernel library at {missing}", reason);

        var text = Path.GetTempFileName();
        try
        {
            File.WriteAllText(text, "not a shared library");
            Assert.False(CudaBackend.TryCreateEmulated(text, out _, out reason));
            Assert.Contains("does not load as a shared library", reason);
            Assert.DoesNotContain('\n', reason);
        }
        finally { File.Delete(text); }
    }

    [Fact]
    public void WithoutGccTheEmulatedKernelsAreRefusedWithOneClearLine()
    {
        var empty = Directory.CreateTempSubdirectory("tpeft-no-gcc-").FullName;
        try
        {
            Assert.False(HostKernelLibrary.TryBuild(Path.Combine(empty, "cache"), out var path, out var reason, compilerSearchPath: empty));
            Assert.Null(path);
            Assert.Contains("needs g++ 12 or newer", reason);
            Assert.DoesNotContain('\n', reason);
            Assert.False(Directory.Exists(Path.Combine(empty, "cache")));
        }
        finally { Directory.Delete(empty, recursive: true); }
    }

    [Fact]
    public void EveryCatalogKernelGetsATrampolineInTheTranslationUnitOfItsFile()
    {
        var units = HostKernelLibrary.TranslationUnits(KernelSourceSet.Embedded());
        foreach (var k in KernelCatalog.All)
        {
            var unit = units.Single(u => u.Name == Path.GetFileNameWithoutExtension(k.File) + ".emu.cpp");
            Assert.Contains($"#include \"{k.File}\"", unit.Text);
            Assert.Contains($"TPEFT_EMU_KERNEL({k.Name})", unit.Text);
        }
        Assert.Single(units, u => u.Text.Contains("#define TPEFT_EMU_ABI_MAIN", StringComparison.Ordinal));
    }

    [SkippableFact]
    public void TheEmulatedBackendRunsModelsOnTheHostDeviceAndHasNoGpuContext()
    {
        var backend = HostEmulatedBackend.Require();
        Assert.True(backend.IsEmulated);
        Assert.Contains("cuda-emulated", backend.Description);
        Assert.Throws<InvalidOperationException>(() => backend.Context);
        using var device = backend.OpenDevice();
        Assert.IsType<HostEmulatedDevice>(device);
        Assert.True(device.SupportsGraphs);
        // A wild pointer is refused before the host-compiled kernel could dereference it.
        var p = device.Allocate(64);
        var e = Assert.Throws<InvalidOperationException>(() => device.Launch(KernelId.CastBf16ToF32, new LaunchShape(1, 32),
            [KernelArgument.Ptr(new DevicePtr(p.Address + 4096)), KernelArgument.Ptr(p), KernelArgument.I64(8)]));
        Assert.Contains("not inside one device allocation", e.Message);
    }

    private static ushort[] Bf16Values(Random rng, int count)
    {
        var v = new ushort[count];
        for (int i = 0; i < count; i++) v[i] = BFloat16.FromSingle((float)(rng.NextDouble() * 2 - 1));
        return v;
    }
}
