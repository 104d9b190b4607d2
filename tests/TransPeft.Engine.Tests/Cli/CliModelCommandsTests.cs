using System.Text.Json.Nodes;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Cli;

/// <summary>End-to-end runs of the `tpeft` executable on models it creates itself.</summary>
public class CliModelCommandsTests
{
    [Fact]
    public void InitThenInspectDescribesTheWrittenModel()
    {
        var dir = Path.Combine(TpeftProcess.TempDir(), "m");
        var init = TpeftProcess.Run("init", "--out", dir, "--preset", "micro", "--model-type", "qwen2", "--tie-embeddings", "true", "--seed", "3", "--json");
        Assert.True(init.ExitCode == 0, init.Stderr);
        var inspect = TpeftProcess.Run("inspect", dir, "--json");
        Assert.Equal(0, inspect.ExitCode);
        var doc = JsonNode.Parse(inspect.Stdout)!;
        Assert.Equal("qwen2", (string?)doc["config"]!["model_type"]);
        var names = doc["tensors"]!.AsArray().Select(t => (string)t!["name"]!).ToList();
        Assert.Contains("model.layers.0.self_attn.q_proj.bias", names);
        Assert.DoesNotContain("lm_head.weight", names);
        // The file loads as a model and the same seed gives the same weights.
        var again = Path.Combine(TpeftProcess.TempDir(), "m");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", again, "--preset", "micro", "--model-type", "qwen2", "--tie-embeddings", "true", "--seed", "3").ExitCode);
        Assert.Equal(File.ReadAllBytes(Path.Combine(dir, "model.safetensors")), File.ReadAllBytes(Path.Combine(again, "model.safetensors")));
    }

    [Fact]
    public void MergeWritesAModelWithAdapterAppliedLogits()
    {
        var root = TpeftProcess.TempDir();
        var modelDir = Path.Combine(root, "base");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", modelDir, "--preset", "micro").ExitCode);
        var model = TransformerModel.Load(modelDir);
        var adapter = TinyModels.TrainedAdapter(model.Config);
        adapter.Save(Path.Combine(root, "adapter"));
        var merge = TpeftProcess.Run("merge", "--model", modelDir, "--adapter", Path.Combine(root, "adapter"), "--out", Path.Combine(root, "merged"));
        Assert.True(merge.ExitCode == 0, merge.Stderr);
        var ids = TinyModels.RandomIds(12, model.Config.VocabSize, 1);
        var want = new CpuTransformer(model, LoraAdapter.Load(Path.Combine(root, "adapter"), model.Config)).ForwardLogits(ids, 2, 6);
        var got = new CpuTransformer(TransformerModel.Load(Path.Combine(root, "merged"))).ForwardLogits(ids, 2, 6);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) < 1e-4, $"logit {i}: {want[i]} vs {got[i]}");
    }

    [Fact]
    public void BadInputGivesOneClearErrorAndExitCode1()
    {
        var r = TpeftProcess.Run("inspect", "/nonexistent/folder");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("/nonexistent/folder", r.Stderr);
        var dir = Path.Combine(TpeftProcess.TempDir(), "m");
        var bad = TpeftProcess.Run("init", "--out", dir, "--heads", "5", "--hidden-size", "64", "--kv-heads", "2");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("num_key_value_heads", bad.Stderr);
        Assert.DoesNotContain("   at ", bad.Stderr); // no stack trace
    }
}
