using System.Diagnostics;
using System.Text.Json;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>
/// tools/gpu-check.sh on a machine without a GPU: the first GPU window must not be spent finding out that the
/// script misbehaves, so its no-device path is checked here. It prints the full table with every step
/// "skipped: no device", writes summary.json (one line per step), summary.txt and logs.tar.gz and nothing else
/// (the GPU machine returns at most 8 files), and exits 2 within a minute.
/// </summary>
public sealed class GpuCheckScriptTests : IDisposable
{
    private static readonly string[] Steps = ["environment", "kernels", "runtime", "kernel-parity", "train-parity", "memcheck", "racecheck"];
    private readonly string _out = Directory.CreateTempSubdirectory("tpeft-gpu-check-").FullName;

    public void Dispose() => Directory.Delete(_out, recursive: true);

    [SkippableFact]
    public void WithoutADeviceEveryStepIsSkippedAndTheScriptExitsTwoWithinAMinute()
    {
        var root = Path.GetDirectoryName(CudaTestEnvironment.RequireKernelsDirectory())!;
        // A PATH without nvidia-smi: the machine's own folders only, unless one of them has it (then this is a GPU machine).
        const string path = "/usr/bin:/bin";
        Skip.If(path.Split(':').Any(d => File.Exists(Path.Combine(d, "nvidia-smi"))), "nvidia-smi is installed here");

        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(root, "tools", "gpu-check.sh"));
        psi.ArgumentList.Add(Path.Combine(_out, "out"));
        psi.Environment["PATH"] = path;
        psi.Environment.Remove("TPEFT_REQUIRE_GPU");
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(60_000), "gpu-check.sh ran over a minute without a device");
        clock.Stop();

        Assert.True(p.ExitCode == 2, $"exit {p.ExitCode}, want 2; stderr: {stderr.Result}");
        Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1));
        var outDir = Path.Combine(_out, "out");
        Assert.Equal(["logs.tar.gz", "summary.json", "summary.txt"], Directory.GetFiles(outDir).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var lines = File.ReadAllLines(Path.Combine(outDir, "summary.json"));
        Assert.Equal(Steps, lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("step").GetString()));
        foreach (var line in lines)
        {
            var row = JsonDocument.Parse(line).RootElement;
            Assert.Equal("skipped", row.GetProperty("status").GetString());
            Assert.StartsWith("no device", row.GetProperty("detail").GetString());
        }
        // The table printed last on stdout is the one in summary.txt, one row per step.
        var table = File.ReadAllText(Path.Combine(outDir, "summary.txt"));
        Assert.EndsWith(table.TrimEnd(), stdout.Result.TrimEnd());
        foreach (var step in Steps) Assert.Matches($@"(?m)^{step}\s+skipped\s+0\s+no device", table);
        Assert.True(new FileInfo(Path.Combine(outDir, "logs.tar.gz")).Length > 0);
    }
}
