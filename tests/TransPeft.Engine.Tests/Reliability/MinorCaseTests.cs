using System.Text.Json.Nodes;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cli;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Tests.Training;
using TransPeft.Engine.Training;
using static TransPeft.Engine.Tests.Training.TrainerTestKit;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>Issue #15, item 9: target modules that name nothing, and a resume that would go back in steps.</summary>
public class MinorCaseTests
{
    [Fact]
    public void TargetModulesThatNameNoModuleAreRefusedOnLoadAndByTransfer()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var config = TransformerModel.Load(model).Config;
        var adapterDir = Path.Combine(root, "adapter");
        TinyModels.TrainedAdapter(config).Save(adapterDir);
        var cfgPath = Path.Combine(adapterDir, LoraAdapter.ConfigFileName);
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!;
        cfg["target_modules"] = new JsonArray("q_proj", "v_proj", "attention.wq");
        File.WriteAllText(cfgPath, cfg.ToJsonString());

        var e = Assert.Throws<ModelConfigException>(() => LoraAdapter.Load(adapterDir, config));
        Assert.Contains(cfgPath, e.Message);
        Assert.Contains("'attention.wq' matches no module", e.Message);

        var r = TpeftProcess.Run("transfer", "--adapter", adapterDir, "--to", model, "--out", Path.Combine(root, "moved"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("attention.wq", r.Stdout + r.Stderr);
        Assert.False(Directory.Exists(Path.Combine(root, "moved")));
    }

    [Fact]
    public void ResumingWithFewerStepsThanTheCheckpointIsRefused()
    {
        var dir = TempDir();
        var options = new TrainingOptions { Steps = 6, BatchSize = 2, LearningRate = 0.05, Seed = 1 };
        new Trainer(new FakeBigramModel(Vocab, 1), MakeData(false), options, dir).Run();
        var e = Assert.Throws<TrainingConfigException>(() =>
            new Trainer(new FakeBigramModel(Vocab, 1), MakeData(false), options with { Steps = 3 }, dir).Run(resumeFrom: dir));
        Assert.Equal("steps", e.Field);
        Assert.Contains("at least 6", e.Message);
        // Equal is fine: the run is already complete and finishes at once.
        Assert.Equal(6, new Trainer(new FakeBigramModel(Vocab, 1), MakeData(false), options, dir).Run(resumeFrom: dir).Step);
    }
}
