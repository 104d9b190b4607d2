using System.Text.Json.Nodes;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Inference;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cli;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Text;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>Non-finite weights, merge results, logits, losses and sampling settings are errors with a name, never output.</summary>
public sealed class NonFiniteTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    [Fact]
    public void NaNWeightsInAModelOrAnAdapterAreRefusedOnLoadNamingFileAndTensor()
    {
        var model = TinyModels.Model();
        model.Layers[1].Up.Data[17] = float.NaN;
        var dir = _dir.Sub("nan-model");
        model.Save(dir);
        var e = Assert.Throws<NonFiniteValueException>(() => TransformerModel.Load(dir));
        Assert.Contains(Path.Combine(dir, "model.safetensors"), e.Message);
        Assert.Contains("model.layers.1.mlp.up_proj.weight", e.Message);
        Assert.Contains("NaN at element 17", e.Message);

        var good = TinyModels.Model();
        var adapter = TinyModels.TrainedAdapter(good.Config);
        adapter.Modules().First().B.Data[3] = float.PositiveInfinity;
        var adir = _dir.Sub("inf-adapter");
        adapter.Save(adir);
        var ea = Assert.Throws<NonFiniteValueException>(() => LoraAdapter.Load(adir, good.Config));
        Assert.Contains("lora_B", ea.Message);
        Assert.Contains("+infinity", ea.Message);
    }

    [Fact]
    public void AMergeThatOverflowsAndLogitsThatOverflowAreRefused()
    {
        var model = TinyModels.Model();
        var adapter = TinyModels.TrainedAdapter(model.Config);
        foreach (var m in adapter.Modules()) { Array.Fill(m.A.Data, 1e20f); Array.Fill(m.B.Data, 1e20f); }
        var e = Assert.Throws<NonFiniteValueException>(() => LoraMerge.Merge(model, adapter));
        Assert.Contains("merged weight", e.Message);

        // Finite but huge head weights: every logit overflows fp32.
        var huge = TinyModels.Model();
        Array.Fill(huge.Head.Data, 3e38f);
        var cpu = CpuTransformer.ForInference(huge);
        Assert.Throws<NonFiniteValueException>(() => cpu.ForwardLogits([1, 2, 3], 1, 3));
        Assert.Throws<NonFiniteValueException>(() => cpu.ForwardCached(new KvCache(huge.Config, 1, 8), [1, 2, 3], 1, 3));
        Assert.Throws<NonFiniteValueException>(() => cpu.Loss(BatchBuilder.Build(
            new TokenizedDataset("d", "d", 0, [1, 2, 3], [1, 2, 3], [0, 3]), [0], 3, false)));
    }

    [Theory]
    [InlineData(double.NaN, 1.0)]
    [InlineData(double.PositiveInfinity, 1.0)]
    [InlineData(1.0, double.NaN)]
    public void NaNSamplingSettingsAreRefused(double temperature, double topP) =>
        Assert.Throws<ArgumentException>(() => new GenerationOptions { Temperature = temperature, TopP = topP }.Validate());

    [Fact]
    public void CommandsRefuseANaNModelInOneLine()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        foreach (var (flag, value) in new[] { ("--temperature", "NaN"), ("--top-p", "NaN") })
        {
            var bad = TpeftProcess.Run("generate", "--model", model, "--prompt-ids", "1", "--max-new-tokens", "1", flag, value);
            Assert.True(bad.ExitCode == 1, $"{flag} {value}: exit {bad.ExitCode}: {bad.Stdout}");
            Assert.Contains(flag.TrimStart('-').Replace('-', ' ').Replace("top p", "top-p"), bad.Stderr);
        }
        var loaded = TransformerModel.Load(model);
        var adapterDir = Path.Combine(root, "adapter");
        TinyModels.TrainedAdapter(loaded.Config).Save(adapterDir);
        loaded.Layers[0].Down.Data[5] = float.NaN;
        loaded.Save(model, SafetensorsDType.F32);
        var data = CliFixtures.TextRecords(Path.Combine(root, "d.jsonl"), 4, 1);
        var task = Path.Combine(root, "task.jsonl");
        File.WriteAllLines(task, Enumerable.Range(0, 3).Select(i =>
            new JsonObject { ["prompt"] = "one two", ["completion"] = i % 2 == 0 ? " yes" : " no", ["labels"] = new JsonArray(" yes", " no") }.ToJsonString()));

        foreach (var args in new[]
        {
            new[] { "score", "--model", model, "--data", data, "--json" },
            ["generate", "--model", model, "--prompt-ids", "1,2", "--max-new-tokens", "2", "--greedy"],
            ["eval", "--model", model, "--task", task, "--json"],
            ["merge", "--model", model, "--adapter", adapterDir, "--out", Path.Combine(root, "merged")],
        })
        {
            var r = TpeftProcess.Run(args);
            var error = CliAssert.OneErrorLine(r);
            Assert.Contains("non-finite value (NaN", error);
            Assert.Contains("model.layers.0.mlp.down_proj.weight", error);
        }
        Assert.False(Directory.Exists(Path.Combine(root, "merged")));
    }
}
