using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Tests.Training;
using TransPeft.Engine.Training;
using static TransPeft.Engine.Tests.Training.TrainerTestKit;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>Sizes from config.json and flags are checked in 64-bit arithmetic and against memory before allocating.</summary>
public class SizeTests
{
    [Theory]
    [InlineData(50_000_000)]
    [InlineData(1 << 28)]
    [InlineData(1 << 29)]
    public void AHugeMaxPositionEmbeddingsCostsNothingUntilPositionsAreUsed(int maxPositions)
    {
        var model = TransformerModel.CreateRandom(TinyModels.Config() with { MaxPositionEmbeddings = maxPositions }, 1);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var cpu = CpuTransformer.ForInference(model);
        var logits = cpu.ForwardLogits(TinyModels.RandomIds(61, model.Config.VocabSize, 2), 1, 61);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(61 * model.Config.VocabSize, logits.Length);
        Assert.True(allocated < 64L << 20, $"scoring 61 tokens allocated {allocated:N0} bytes");
    }

    [Fact]
    public void ConfigSizesThatOverflowOrDoNotFitAreNamedErrors()
    {
        var vocab = Assert.Throws<ModelConfigException>(() => (TinyModels.Config() with { VocabSize = 2_000_000_000 }).Validate("config.json"));
        Assert.Equal("vocab_size", vocab.Field);
        var heads = Assert.Throws<ModelConfigException>(() => (TinyModels.Config() with { NumHeads = 1 << 20, NumKvHeads = 1, HeadDim = 1 << 12 }).Validate("config.json"));
        Assert.Equal("num_attention_heads", heads.Field);
        // Every tensor fits an array, but the whole model is terabytes.
        var big = TinyModels.Config() with { NumLayers = 1000, HiddenSize = 8192, IntermediateSize = 22016, NumHeads = 64, NumKvHeads = 8, HeadDim = 128 };
        var e = Assert.Throws<MemoryBudgetException>(() => TransformerModel.CreateRandom(big, 1));
        Assert.Contains("fp32 parameters", e.Message);
        Assert.Throws<MemoryBudgetException>(() => MemoryBudget.Require(2L << 30, "x", limit: 1L << 30));
    }

    [Theory]
    [InlineData("seq_len")]
    [InlineData("lora_r")]
    [InlineData("epochs")]
    [InlineData("batch_size")]
    public void FlagsBeyondTheirBoundsAreRefused(string field)
    {
        var o = new TrainingOptions();
        o = field switch
        {
            "seq_len" => o with { SeqLen = 2_000_000_000 },
            "lora_r" => o with { LoraR = 1_000_000_000 },
            "epochs" => o with { Epochs = 1e300 },
            _ => o with { BatchSize = 100_000 },
        };
        Assert.Equal(field, Assert.Throws<TrainingConfigException>(() => o.Validate()).Field);
    }

    [Fact]
    public void ABatchLargerThanTheDataIsRefusedAndEpochsThatOverflowTheStepCountToo()
    {
        var e = Assert.Throws<TrainingConfigException>(() =>
            new Trainer(new FakeBigramModel(Vocab, 1), MakeData(false), new TrainingOptions { BatchSize = 25, Steps = 1 }, TempDir()));
        Assert.Equal("batch_size", e.Field);
        Assert.Equal("epochs", Assert.Throws<TrainingConfigException>(() => new TrainingOptions { Epochs = 1e6 }.ResolveTotalSteps(int.MaxValue)).Field);
    }

    [Fact]
    public void TheCliRefusesHugeSizesInOneLine()
    {
        var root = Support.TpeftProcess.TempDir();
        var error = CliAssert.OneErrorLine(Support.TpeftProcess.Run("init", "--out", Path.Combine(root, "m"), "--vocab-size", "2000000000"));
        Assert.Contains("vocab_size", error);
    }

    [Fact]
    public void AMemoryLimitRefusesAModelBeyondItBeforeLoading()
    {
        var config = TinyModels.Config();
        var e = Assert.Throws<MemoryBudgetException>(() => TransformerModel.CreateRandom(config, 1, memoryLimit: 4096));
        Assert.Contains("fp32 parameters", e.Message);
        Assert.Equal(4096, e.Budget);
        var dir = Support.TpeftProcess.TempDir();
        TransformerModel.CreateRandom(config, 1).Save(dir);
        Assert.Throws<MemoryBudgetException>(() => Sessions.InferenceSession.Load(dir, new Sessions.SessionOptions { MaxMemoryBytes = 4096 }));
        using var fits = Sessions.InferenceSession.Load(dir, new Sessions.SessionOptions { MaxMemoryBytes = 1L << 30 });
        Assert.Equal(config.VocabSize, fits.Config.VocabSize);
    }

    [Fact]
    public void TheCliTakesMaxMemoryOnEveryCommand()
    {
        var root = Support.TpeftProcess.TempDir();
        var refused = CliAssert.OneErrorLine(Support.TpeftProcess.Run("init", "--out", Path.Combine(root, "m"), "--preset", "tiny", "--max-memory", "1K"));
        Assert.Contains("memory", refused);
        Assert.False(File.Exists(Path.Combine(root, "m", "model.safetensors")));
        var bad = CliAssert.OneErrorLine(Support.TpeftProcess.Run("init", "--out", Path.Combine(root, "m2"), "--preset", "tiny", "--max-memory", "lots"));
        Assert.Contains("--max-memory", bad);
    }
}
