using System.Text.Json.Nodes;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.TransPeft;

public sealed class AdapterTransferTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("tpeft-transfer-");
    private string P(string name) => Path.Combine(_root.FullName, name);
    public void Dispose() => _root.Delete(true);

    private static readonly TransPeftSettings Settings = new() { PMask = 0.1, PDrop = 0.1, Seed = 42 };

    /// <summary>Old base, an adapter trained on it (recording it as its base), and a new base of the given config.</summary>
    private (TransformerModel Old, LoraAdapter Adapter) Setup(ModelConfig newConfig, int newSeed = 2)
    {
        var old = TinyModels.Model(1);
        old.Save(P("old"));
        TransformerModel.CreateRandom(newConfig, newSeed, initStd: 0.2).Save(P("new"));
        var adapter = TinyModels.TrainedAdapter(old.Config, seed: 5);
        adapter.BaseModelNameOrPath = P("old");
        Settings.WriteTo(adapter);
        adapter.Save(P("adapter"));
        return (old, adapter);
    }

    [Fact]
    public void IdenticalArchitectureIsCompatible()
    {
        Setup(TinyModels.Config());
        var report = AdapterTransfer.Check(P("adapter"), P("new"));
        Assert.True(report.IsCompatible, report.Describe());
        Assert.Empty(report.Issues);
        Assert.Equal(14, report.AdapterModules);
        Assert.Equal(4, report.Rank);
        Assert.Equal(Settings, report.TransPeft);
        Assert.Equal(Path.Combine(P("old"), "config.json"), report.OldBaseConfigPath);
    }

    [Fact]
    public void TransferWritesTheSameTensorsRetargetedAtTheNewBaseAndAMergedModel()
    {
        var (_, original) = Setup(TinyModels.Config());
        var result = AdapterTransfer.Transfer(P("adapter"), P("new"), P("out"), merge: true);
        Assert.Equal(P("out"), result.AdapterDir);
        Assert.Equal(Path.Combine(P("out"), "merged"), result.MergedModelDir);

        var newBase = TransformerModel.Load(P("new"));
        var moved = LoraAdapter.Load(P("out"), newBase.Config);
        Assert.Equal(Path.GetFullPath(P("new")), moved.BaseModelNameOrPath);
        Assert.Equal(P("old"), moved.Metadata[AdapterTransfer.TransferredFromKey]);
        Assert.Equal(Settings, TransPeftSettings.ReadFrom(moved));
        var a = original.Modules().ToList(); var b = moved.Modules().ToList();
        Assert.Equal(a.Count, b.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(a[i].PeftKeyA, b[i].PeftKeyA);
            Assert.Equal(a[i].A.Data, b[i].A.Data);
            Assert.Equal(a[i].B.Data, b[i].B.Data);
        }

        // adapter_config.json: the same PEFT keys, only base_model_name_or_path changed.
        var before = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(P("adapter"), LoraAdapter.ConfigFileName)))!;
        var after = (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(P("out"), LoraAdapter.ConfigFileName)))!;
        Assert.Equal(before.Select(kv => kv.Key).Order(), after.Select(kv => kv.Key).Order());
        Assert.All(after.Select(kv => kv.Key), k => Assert.Contains(k, TransPeftSettingsTests.PeftLoraConfigKeys));
        foreach (var (k, v) in before)
            if (k != "base_model_name_or_path") Assert.True(JsonNode.DeepEquals(v, after[k]), k);

        // The merged model computes what the new base with the (unmerged) adapter computes.
        var ids = TinyModels.RandomIds(2 * 7, newBase.Config.VocabSize, 3);
        var want = new CpuTransformer(newBase, moved).ForwardLogits(ids, 2, 7);
        var got = new CpuTransformer(TransformerModel.Load(result.MergedModelDir!)).ForwardLogits(ids, 2, 7);
        Tolerance.Elementwise("merged logits", want.Select(x => (double)x).ToArray(), got, 1e-4, 1e-4);
        Assert.NotEqual(want, new CpuTransformer(newBase).ForwardLogits(ids, 2, 7)); // the adapter does something
    }

    [Fact]
    public void MismatchedBaseIsRejectedNamingEveryModuleAndBothShapes()
    {
        // New base: wider FFN (48 -> 64). Adapter r=4: gate/up B is [48, 4], down A is [4, 48].
        Setup(TinyModels.Config() with { IntermediateSize = 64 });
        var report = AdapterTransfer.Check(P("adapter"), P("new"));
        Assert.False(report.IsCompatible);
        var errors = report.Errors.ToList();
        Assert.Contains(errors, e => e.Subject == "intermediate_size" && e.AdapterSide == "48" && e.BaseSide == "64");
        for (int l = 0; l < 2; l++)
        {
            var gate = Assert.Single(errors, e => e.Subject == $"model.layers.{l}.mlp.gate_proj");
            Assert.Equal("[48, 4]", gate.AdapterSide);
            Assert.Equal("[64, 32]", gate.BaseSide);
            Assert.Contains("out_features", gate.Problem);
            Assert.Single(errors, e => e.Subject == $"model.layers.{l}.mlp.up_proj");
            var down = Assert.Single(errors, e => e.Subject == $"model.layers.{l}.mlp.down_proj");
            Assert.Equal("[4, 48]", down.AdapterSide);
            Assert.Equal("[32, 64]", down.BaseSide);
            Assert.Contains("in_features", down.Problem);
        }
        Assert.DoesNotContain(errors, e => e.Subject.Contains("self_attn"));
        Assert.Equal(7, errors.Count);

        var ex = Assert.Throws<AdapterTransferException>(() => AdapterTransfer.Transfer(P("adapter"), P("new"), P("out")));
        Assert.Contains("model.layers.1.mlp.down_proj: lora_A is [4, 48] (in_features 48) but the new base's weight is [32, 64] (in_features 64)", ex.Message);
        Assert.Contains("7 errors", ex.Message);
        Assert.False(Directory.Exists(P("out")));
    }

    [Fact]
    public void FewerLayersReportEveryMissingModule()
    {
        Setup(TinyModels.Config(layers: 1));
        var report = AdapterTransfer.Check(P("adapter"), P("new"));
        var errors = report.Errors.ToList();
        Assert.Contains(errors, e => e.Subject == "num_hidden_layers" && e.AdapterSide == "2" && e.BaseSide == "1");
        foreach (var p in ProjectionNames.All)
            Assert.Contains(errors, e => e.Subject == p.FullName(1) && e.Problem.Contains("missing from the new base") && e.Problem.Contains("1 layers"));
        Assert.Equal(8, errors.Count);
    }

    [Fact]
    public void WithoutTheOldBaseTheTensorShapesStillDecide()
    {
        Setup(TinyModels.Config() with { IntermediateSize = 64 });
        Directory.Delete(P("old"), true);
        var report = AdapterTransfer.Check(P("adapter"), P("new"));
        Assert.Contains(report.Warnings, w => w.Subject == "old base");
        Assert.Equal(6, report.Errors.Count()); // gate, up, down in two layers
        Assert.All(report.Errors, e => Assert.Contains(".mlp.", e.Subject));
    }

    [Fact]
    public void ArchitectureAndRopeDifferencesAreReported()
    {
        Setup(TinyModels.Config() with { ModelType = "mistral", RopeTheta = 500000 });
        var report = AdapterTransfer.Check(P("adapter"), P("new"));
        Assert.Contains(report.Errors, e => e.Subject == "model_type" && e.AdapterSide == "llama" && e.BaseSide == "mistral");
        Assert.Contains(report.Warnings, w => w.Subject == "rope_theta");
        Assert.Single(report.Errors);
    }

    [Fact]
    public void StrayAndUnpairedTensorsAreErrors()
    {
        Setup(TinyModels.Config());
        var w = new SafetensorsWriter();
        using (var r = SafetensorsReader.Open(Path.Combine(P("adapter"), LoraAdapter.WeightsFileName)))
            foreach (var n in r.Names.Where(n => !n.Contains("layers.1.mlp.up_proj.lora_B")))
                w.Add(n, r.GetInfo(n).DType, r.GetInfo(n).Shape, r.GetBytes(n).ToArray());
        w.AddFloat("base_model.model.lm_head.lora_A.weight", new float[4 * 32], [4, 32]);
        w.Save(Path.Combine(P("adapter"), LoraAdapter.WeightsFileName));
        var errors = AdapterTransfer.Check(P("adapter"), P("new")).Errors.ToList();
        Assert.Contains(errors, e => e.Subject == "model.layers.1.mlp.up_proj" && e.Problem.Contains("lora_B is missing"));
        Assert.Contains(errors, e => e.Subject == "base_model.model.lm_head.lora_A.weight");
        Assert.Equal(2, errors.Count);
    }
}
