using System.Text.Json.Nodes;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Cli;

/// <summary>`tpeft transfer`, `analyze-update`, `bench train`, `data` and the --device choice, end to end.</summary>
public class CliTransferAndToolsTests
{
    /// <summary>A base, a Trans-PEFT adapter trained on it (recorded as its base), and the base's "update".</summary>
    private static (string V1, string Adapter) BaseAndAdapter(string root)
    {
        var v1 = Path.Combine(root, "v1");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", v1, "--preset", "micro", "--seed", "1").ExitCode);
        var adapter = TinyModels.TrainedAdapter(TransformerModel.Load(v1).Config);
        adapter.BaseModelNameOrPath = v1;
        new TransPeftSettings { PMask = 0.2, PDrop = 0.1, Seed = 3 }.WriteTo(adapter);
        var dir = Path.Combine(root, "adapter");
        adapter.Save(dir);
        return (v1, dir);
    }

    [Fact]
    public void TransferRetargetsACompatibleAdapterAndListsEveryIncompatibility()
    {
        var root = TpeftProcess.TempDir();
        var (_, adapter) = BaseAndAdapter(root);
        var v2 = Path.Combine(root, "v2");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", v2, "--preset", "micro", "--seed", "2").ExitCode);

        var check = TpeftProcess.Run("transfer", "--adapter", adapter, "--to", v2, "--check-only", "--json");
        Assert.True(check.ExitCode == 0, check.Stderr);
        Assert.True((bool)JsonNode.Parse(check.Stdout)!["compatible"]!);
        Assert.False(Directory.Exists(Path.Combine(root, "moved")));

        var moved = Path.Combine(root, "moved");
        var r = TpeftProcess.Run("transfer", "--adapter", adapter, "--to", v2, "--out", moved, "--merge", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(0.2, (double)doc["trans_peft"]!["p_mask"]!);
        using (var a = SafetensorsReader.Open(Path.Combine(adapter, LoraAdapter.WeightsFileName)))
        using (var b = SafetensorsReader.Open(Path.Combine(moved, LoraAdapter.WeightsFileName)))
        {
            Assert.Equal(a.Names.Order(), b.Names.Order());
            foreach (var n in a.Names) Assert.Equal(a.GetBytes(n).ToArray(), b.GetBytes(n).ToArray());
        }
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(moved, LoraAdapter.ConfigFileName)))!;
        Assert.Equal(Path.GetFullPath(v2), (string?)cfg["base_model_name_or_path"]);
        // The merged model computes what the new base with the adapter does.
        var newBase = TransformerModel.Load(v2);
        var ids = TinyModels.RandomIds(12, newBase.Config.VocabSize, 1);
        var want = new CpuTransformer(newBase, LoraAdapter.Load(moved, newBase.Config)).ForwardLogits(ids, 2, 6);
        var got = new CpuTransformer(TransformerModel.Load((string)doc["merged"]!)).ForwardLogits(ids, 2, 6);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(want[i] - got[i]) < 1e-4, $"logit {i}: {want[i]} vs {got[i]}");

        // A base whose FFN is narrower: every FFN module of every layer is reported, and nothing is written.
        var narrow = Path.Combine(root, "narrow");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", narrow, "--preset", "micro", "--intermediate-size", "128").ExitCode);
        var bad = TpeftProcess.Run("transfer", "--adapter", adapter, "--to", narrow, "--out", Path.Combine(root, "nope"));
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("INCOMPATIBLE", bad.Stdout);
        Assert.Contains("intermediate_size", bad.Stdout);
        foreach (var m in new[] { "model.layers.0.mlp.gate_proj", "model.layers.1.mlp.down_proj" }) Assert.Contains(m, bad.Stdout);
        Assert.Contains("does not fit", bad.Stderr);
        Assert.False(Directory.Exists(Path.Combine(root, "nope")));
        var badJson = TpeftProcess.Run("transfer", "--adapter", adapter, "--to", narrow, "--check-only", "--json");
        Assert.Equal(1, badJson.ExitCode);
        var issues = JsonNode.Parse(badJson.Stdout)!["issues"]!.AsArray();
        // intermediate_size itself, plus gate/up (out_features) and down (in_features) of both layers.
        Assert.True(issues.Count(i => (string?)i!["severity"] == "error") >= 7, badJson.Stdout);

        var noOut = TpeftProcess.Run("transfer", "--adapter", adapter, "--to", v2);
        Assert.Equal(1, noOut.ExitCode);
        Assert.Contains("--out", noOut.Stderr);
    }

    [Fact]
    public void AnalyzeUpdateShowsAnFfnOnlyUpdateAndWritesJsonAndHeatmap()
    {
        var root = TpeftProcess.TempDir();
        var v1 = CliFixtures.ModelWithTokenizer(root, "v1");
        // The update moves only the FFN weights.
        var model = TransformerModel.Load(v1);
        var rng = new Random(4);
        foreach (var layer in model.Layers)
            foreach (var p in new[] { Projection.Gate, Projection.Up, Projection.Down })
                for (int i = 0; i < layer.Weight(p).Data.Length; i++) layer.Weight(p).Data[i] += (float)(rng.NextDouble() - 0.5) * 0.01f;
        var v2 = Path.Combine(root, "v2");
        model.Save(v2);
        var text = CliFixtures.TextRecords(Path.Combine(root, "text.jsonl"), 30, 1);
        var outDir = Path.Combine(root, "analysis");

        var r = TpeftProcess.Run("analyze-update", "--old", v1, "--new", v2, "--data", text, "--seq-len", "16", "--out", outDir, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal(0.0, (double)doc["attention_change"]!);
        Assert.True((double)doc["ffn_change"]! > 0);
        var act = doc["activations"]!;
        Assert.True((long)act["tokens"]! > 0);
        foreach (var l in act["layers"]!.AsArray())
        {
            Assert.True((double)l!["ffn_cosine"]! < 1.0);
            Assert.True((double)l["ffn_cosine"]! > 0.5);
        }
        Assert.Equal(doc["ffn_change"]!.ToJsonString(), JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "update_analysis.json")))!["ffn_change"]!.ToJsonString());
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, File.ReadAllBytes(Path.Combine(outDir, "update_heatmap.png")).Take(4).ToArray());

        var table = TpeftProcess.Run("analyze-update", "--old", v1, "--new", v2);
        Assert.True(table.ExitCode == 0, table.Stderr);
        Assert.Contains("gate_proj", table.Stdout);
        Assert.Contains("FFN / attention change", table.Stdout);

        var other = Path.Combine(root, "other");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", other, "--preset", "micro", "--layers", "3").ExitCode);
        var mismatch = TpeftProcess.Run("analyze-update", "--old", v1, "--new", other);
        Assert.Equal(1, mismatch.ExitCode);
        Assert.Contains("num_hidden_layers", mismatch.Stderr);
    }

    [SkippableFact]
    public void ProfileRunsStepsAndDecodeTokensOnTheCudaBackendAndRefusesTheCpu()
    {
        var cpu = TpeftProcess.Run("profile", "--preset", "micro", "--batch", "1", "--seq", "8", "--steps", "1", "--device", "cpu");
        Assert.Equal(1, cpu.ExitCode);
        Assert.Contains("profile: the CPU has no Nsight capture range; run with --device cuda[:N]", cpu.Stderr);

        Cuda.Backend.HostEmulatedBackend.Require(); // the library exists (or the test skips without g++)
        var r = TpeftProcess.Run("profile", "--preset", "micro", "--batch", "1", "--seq", "16", "--steps", "2", "--warmup", "1", "--device", "cuda-emulated", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var doc = JsonNode.Parse(r.Stdout)!;
        Assert.Equal("cuda-emulated", (string)doc["device"]!);
        Assert.Equal(2, (int)doc["profiled_steps"]!);
        Assert.True((double)doc["ms_per_step"]! > 0);

        // Decode tokens through the session API: a prompt prefilled outside the range, then N tokens inside it.
        var d = TpeftProcess.Run("profile", "--preset", "micro", "--decode", "3", "--prompt-tokens", "5", "--warmup", "1", "--device", "cuda-emulated", "--json");
        Assert.True(d.ExitCode == 0, d.Stderr);
        var dec = JsonNode.Parse(d.Stdout)!;
        Assert.Equal(3, (int)dec["profiled_tokens"]!);
        Assert.Equal(5, (int)dec["prompt_tokens"]!);
        Assert.True((double)dec["ms_per_token"]! > 0);
        var tooLong = TpeftProcess.Run("profile", "--preset", "micro", "--decode", "600", "--prompt-tokens", "5", "--device", "cuda-emulated");
        Assert.Equal(1, tooLong.ExitCode);
        Assert.Contains("--prompt-tokens 5 + --decode 600 + 1 (the prefill's token) exceed the model's maximum sequence length 512", tooLong.Stderr);
    }

    [Fact]
    public void BenchTrainMeasuresALoraAndAFullStep()
    {
        var r = TpeftProcess.Run("bench", "train", "--preset", "micro", "--batch", "2", "--seq", "16", "--reps", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var results = JsonNode.Parse(r.Stdout)!["results"]!.AsArray();
        Assert.Equal(["train-lora", "train-full"], results.Select(x => (string)x!["benchmark"]!));
        Assert.All(results, x => Assert.True((double)x!["tokens_per_s"]! > 0));
        long lora = (long)results[0]!["trainable_parameters"]!, full = (long)results[1]!["trainable_parameters"]!;
        Assert.Equal(ModelPresets.Get("micro").ParameterCount(), full);
        Assert.True(lora > 0 && lora < full / 4, $"{lora} vs {full}");
        var table = TpeftProcess.Run("bench", "train", "--preset", "micro", "--batch", "1", "--seq", "8", "--reps", "1", "--method", "lora");
        Assert.True(table.ExitCode == 0, table.Stderr);
        Assert.Contains("train-lora", table.Stdout);
        Assert.DoesNotContain("train-full", table.Stdout);
    }

    [Fact]
    public void DeviceChoiceFallsBackOnAutoAndRefusesCudaAndNonsense()
    {
        var root = TpeftProcess.TempDir();
        var bare = Path.Combine(root, "m");
        Assert.Equal(0, TpeftProcess.Run("init", "--out", bare, "--preset", "micro").ExitCode);
        string[] gen = ["generate", "--model", bare, "--prompt-ids", "1,2", "-n", "2", "--greedy"];
        var auto = TpeftProcess.Run([.. gen, "--device", "auto"]);
        Assert.Equal(0, auto.ExitCode);
        Assert.Contains("device: cpu (", auto.Stderr); // no GPU here: the reason says what is missing
        var cpu = TpeftProcess.Run([.. gen, "--device", "cpu"]);
        Assert.Equal(0, cpu.ExitCode);
        Assert.DoesNotContain("device:", cpu.Stderr);
        foreach (var cuda in new[] { "cuda", "cuda:1" })
        {
            var r = TpeftProcess.Run([.. gen, "--device", cuda]);
            Assert.Equal(1, r.ExitCode);
            Assert.Contains($"--device {cuda}: ", r.Stderr);
            Assert.Contains("run with --device cpu (or auto)", r.Stderr);
        }
        var nonsense = TpeftProcess.Run([.. gen, "--device", "tpu"]);
        Assert.Equal(1, nonsense.ExitCode);
        Assert.Contains($"--device: expected {Engine.Sessions.DeviceSpec.Expected}, got 'tpu'", nonsense.Stderr);
        // Every compute command has the option.
        foreach (var cmd in new[] { "train", "generate", "score", "eval", "analyze-update" })
            Assert.Contains("--device", TpeftProcess.Run(cmd, "--help").Stdout);
        Assert.Contains("--device", TpeftProcess.Run("bench", "train", "--help").Stdout);
    }

    [Fact]
    public void DataRejectsAnUnknownPresetBeforeFetchingAnything()
    {
        var root = TpeftProcess.TempDir();
        var r = TpeftProcess.RunIn(new Dictionary<string, string> { ["TPEFT_DATA_DIR"] = Path.Combine(root, "cache") }, "data", "--preset", "huge", "--out", Path.Combine(root, "data"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--preset: expected cpu or full, got 'huge'", r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(root, "cache")));
    }
}
