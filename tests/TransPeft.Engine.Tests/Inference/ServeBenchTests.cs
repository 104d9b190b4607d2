using System.Text.Json.Nodes;
using TransPeft.Engine.Tests.Support;
using TransPeft.ServeBench;

namespace TransPeft.Engine.Tests.Inference;

/// <summary>
/// tools/TransPeft.ServeBench, the serving latency benchmark the GPU check runs on `--device cuda`: a smoke run with the
/// micro model on cuda-emulated (the real kernels on the host, the same code path as a GPU) and on the CPU. The figures
/// are not checked (they are timings), only that every part ran and reported sane numbers, so the first GPU window
/// records them instead of finding a broken script.
/// </summary>
[Collection(Cuda.Backend.HostEmulatedCollection.Name)]
public sealed class ServeBenchTests
{
    [SkippableFact]
    public void RunsEveryPartOnCudaEmulatedWithAMicroModel()
    {
        Cuda.Backend.HostEmulatedBackend.Require(); // the kernel library exists (or the test skips without g++)
        var (rc, text, json) = Run("cuda-emulated");
        Assert.True(rc == 0, text);
        Assert.Contains("summary: micro on cuda-emulated", text);
        CheckLatencyAndLoads(json);
        // Mixed-adapter batches on CUDA (the KV decoder's BGMV step): measured, as on the CPU.
        CheckRatios(json["throughput"]!.AsArray());
    }

    [Fact]
    public void RunsEveryPartOnTheCpuWithRatiosToOneAdapter()
    {
        var (rc, text, json) = Run("cpu");
        Assert.True(rc == 0, text);
        CheckLatencyAndLoads(json);
        CheckRatios(json["throughput"]!.AsArray());
        Assert.Contains("2 adapters at", text);
    }

    [Theory]
    [InlineData(new[] { "--shape", "huge" }, "unknown model preset 'huge'")]
    [InlineData(new[] { "--runs", "0" }, "--runs: expected a positive integer, got '0'")]
    [InlineData(new[] { "--adapters", "8,32" }, "--adapters: the first count must be 1")]
    [InlineData(new[] { "--new-tokens", "1" }, "--new-tokens: at least 2")]
    [InlineData(new[] { "--bogus" }, "unknown argument '--bogus'")]
    [InlineData(new[] { "--device", "tpu" }, "--device: expected cpu, cuda, cuda:N")]
    public void BadArgumentsAreNamed(string[] args, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => ServeBenchCommand.Parse(args));
        Assert.Contains(expected, e.Message);
    }

    private static (int Rc, string Text, JsonNode Json) Run(string device)
    {
        string work = TpeftProcess.TempDir(), json = Path.Combine(work, "serve-bench.json");
        var options = new ServeBenchCommand.Options
        {
            Device = device, Shape = "micro", Threads = 1, Prompt = 6, NewTokens = 3, Runs = 2, Requests = 4, Adapters = [1, 2],
            Json = json, Work = work,
        };
        var output = new StringWriter();
        int rc = ServeBenchCommand.Run(options, output);
        return (rc, output.ToString(), JsonNode.Parse(File.ReadAllText(json))!);
    }

    private static void CheckLatencyAndLoads(JsonNode json)
    {
        var b1 = json["batch1"]!;
        double ttft = (double)b1["ttft_p50_ms"]!, p50 = (double)b1["per_token_p50_ms"]!, p99 = (double)b1["per_token_p99_ms"]!;
        Assert.True(ttft > 0 && p50 > 0 && p99 >= p50, $"ttft {ttft}, p50 {p50}, p99 {p99}");
        var load = json["adapter_load"]!;
        Assert.True((double)load["load_p50_ms"]! > 0 && (double)load["hot_swap_p50_ms"]! > 0 && (double)load["first_token_cold_p50_ms"]! > 0);
        Assert.Equal(16, (int)load["rank"]!);
    }

    private static void CheckRatios(JsonArray rows)
    {
        Assert.Equal([1, 2], rows.Select(r => (int)r!["distinct"]!));
        Assert.Equal(1.0, (double)rows[0]!["ratio"]!);
        Assert.All(rows, r => Assert.True((double)r!["tokens_per_s"]! > 0));
    }
}
