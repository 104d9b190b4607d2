using System.Text.Json;
using TransPeft.Cuda.Compile;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>What <c>tpeft kernels</c> prints: one record per kernel per file, or the file's compile error.</summary>
public sealed class KernelReportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tpeft-kernels-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void AFolderOfSourcesListsCuFilesSortedAndThePreludeFirstAmongHeaders()
    {
        File.WriteAllText(Path.Combine(_dir, "b.cu"), "// b");
        File.WriteAllText(Path.Combine(_dir, "a.cu"), "// a");
        File.WriteAllText(Path.Combine(_dir, "aaa.cuh"), "// helper");
        File.WriteAllText(Path.Combine(_dir, "prelude.cuh"), "// prelude");
        File.WriteAllText(Path.Combine(_dir, "notes.txt"), "ignored");

        var set = KernelSourceSet.FromDirectory(_dir);

        Assert.Equal(["a.cu", "b.cu"], set.Files.Select(f => f.Name));
        Assert.Equal(["prelude.cuh", "aaa.cuh"], set.Headers.Select(h => h.IncludeName));
        Assert.Equal("// a", set.Files[0].Text);
        Assert.Throws<DirectoryNotFoundException>(() => KernelSourceSet.FromDirectory(Path.Combine(_dir, "missing")));
    }

    [Fact]
    public void TheEmbeddedSourcesAreExactlyTheRepositorysKernelsFolder()
    {
        var embedded = KernelSourceSet.Embedded();
        var folder = CudaTestEnvironment.RepoRoot is { } root ? Path.Combine(root, "kernels") : null;
        if (folder is null || !Directory.Exists(folder))
        {
            Assert.Empty(embedded.Files); // nothing to embed, nothing embedded
            return;
        }
        var onDisk = KernelSourceSet.FromDirectory(folder);
        Assert.Equal(onDisk.Files.Select(f => (f.Name, f.Text)), embedded.Files.Select(f => (f.Name, f.Text)));
        Assert.Equal(onDisk.Headers.Select(h => (h.IncludeName, h.Text)), embedded.Headers.Select(h => (h.IncludeName, h.Text)));
    }

    [SkippableFact]
    public void EveryKernelOfEveryFileIsReportedAndABrokenFileCarriesItsLog()
    {
        CudaTestEnvironment.RequireNvrtc();
        File.WriteAllText(Path.Combine(_dir, "prelude.cuh"), TestKernels.Prelude.Text);
        File.WriteAllText(Path.Combine(_dir, "good.cu"), TestKernels.Source);
        File.WriteAllText(Path.Combine(_dir, "local.cu"), TestKernels.LocalArraySource);
        File.WriteAllText(Path.Combine(_dir, "bad.cu"), "extern \"C\" __global__ void bad() { nonsense; }");
        var cache = Path.Combine(_dir, "cache");

        var entries = KernelReport.Build(KernelSourceSet.FromDirectory(_dir), "sm_80", new KernelCompiler(cache));

        Assert.Equal(["bad.cu", "good.cu", "good.cu", "local.cu"], entries.Select(e => e.File));
        var bad = entries[0];
        Assert.False(bad.Compiled);
        Assert.Null(bad.Kernel);
        Assert.Equal("compile-error", bad.Status);
        Assert.Contains("nonsense", bad.Log);
        var tile = entries.Single(e => e.Kernel == "tile_reverse");
        Assert.Equal(("sm_80", 1024, 256, "ok", 0), (tile.Arch, tile.StaticSharedBytes, tile.MaxThreadsPerBlock, tile.Status, tile.SpillBytes));
        Assert.True(tile.Registers > 0);
        Assert.True(entries.Single(e => e.Kernel == "local_array").FrameBytes >= 1024);

        // A second run comes from the cache and says so.
        var again = KernelReport.Build(KernelSourceSet.FromDirectory(_dir), "sm_80", new KernelCompiler(cache));
        Assert.All(again.Where(e => e.Compiled), e => Assert.True(e.FromCache));
        Assert.Equal(entries.Select(e => (e.Kernel, e.Registers)), again.Select(e => (e.Kernel, e.Registers)));

        using var json = JsonDocument.Parse(KernelReport.ToJson(entries));
        var rows = json.RootElement.EnumerateArray().ToList();
        Assert.Equal(entries.Count, rows.Count);
        Assert.Equal(JsonValueKind.Null, rows[0].GetProperty("kernel").ValueKind);
        Assert.Equal("compile-error", rows[0].GetProperty("status").GetString());
        var tileRow = rows.Single(r => r.GetProperty("kernel").ValueKind == JsonValueKind.String && r.GetProperty("kernel").GetString() == "tile_reverse");
        Assert.Equal(1024, tileRow.GetProperty("staticSharedBytes").GetInt32());
        Assert.Equal(tile.Registers, tileRow.GetProperty("registers").GetInt32());
    }
}
