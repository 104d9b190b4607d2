using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using static TransPeft.Engine.Tests.Training.TrainerTestKit;

namespace TransPeft.Engine.Tests.Training;

/// <summary>
/// The trainer with a real <see cref="LoraAdapter"/> as the trainable parameters and LoraAdapter.Save as the
/// weights callback: checkpoints and the final output are PEFT adapter folders, and resuming reads the
/// A/B matrices back by their PEFT names.
/// </summary>
public class LoraCheckpointTests
{
    /// <summary>Trains the adapter's A/B towards token-dependent targets (loss ½‖θ - y/100‖² per counted target).</summary>
    private sealed class AdapterOnlyModel : ITrainableModel
    {
        public LoraAdapter Adapter { get; }
        private readonly Parameter[] _params;

        public AdapterOnlyModel(int seed)
        {
            var config = new ModelConfig { HiddenSize = 8, IntermediateSize = 16, NumLayers = 2, NumHeads = 2, NumKvHeads = 2, HeadDim = 4, VocabSize = Vocab };
            Adapter = LoraAdapter.Create(config, new LoraConfig { R = 2, Alpha = 4, TargetModules = ["q_proj", "down_proj"] }, seed);
            _params = Adapter.Parameters().ToArray();
            foreach (var p in _params) p.EnableGrad();
        }

        public IReadOnlyList<Parameter> TrainableParameters => _params;
        public void ZeroGrad() { foreach (var p in _params) p.ZeroGrad(); }
        public (double LossSum, int Counted) Loss(TokenBatch batch) => Run(batch, 0, false);
        public (double LossSum, int Counted) ForwardBackward(TokenBatch batch, float lossScale, in StepContext context) => Run(batch, lossScale, true);

        private (double, int) Run(TokenBatch batch, float scale, bool backward)
        {
            double loss = 0; int counted = 0;
            for (int b = 0; b < batch.BatchSize; b++)
                for (int t = 1; t < batch.SeqLen; t++)
                {
                    int y = batch.Labels[b * batch.SeqLen + t];
                    if (y == TokenBatch.IgnoreIndex) continue;
                    counted++;
                    foreach (var p in _params)
                        for (int i = 0; i < p.Length; i++)
                        {
                            float r = p.Data[i] - y / 100f;
                            loss += 0.5 * r * r;
                            if (backward) p.Grad![i] += scale * r;
                        }
                }
            return (loss, counted);
        }
    }

    [Fact]
    public void Lora_checkpoints_are_peft_folders_and_resume_bit_identically()
    {
        var data = MakeData();
        var options = new TrainingOptions { Steps = 6, BatchSize = 2, LearningRate = 0.01, SaveEvery = 3, KeepCheckpoints = 0 };
        var config = new ModelConfig { HiddenSize = 8, IntermediateSize = 16, NumLayers = 2, NumHeads = 2, NumKvHeads = 2, HeadDim = 4, VocabSize = Vocab };

        var full = TempDir();
        var reference = new AdapterOnlyModel(seed: 1);
        new Trainer(reference, data, options, full, reference.Adapter.Save).Run();
        var final = LoraAdapter.Load(Path.Combine(full, Trainer.FinalWeightsDir), config);
        Assert.Equal(4, final.ModuleCount);
        var ck3 = LoraAdapter.Load(Path.Combine(full, "checkpoints", "step-00000003", CheckpointStore.WeightsDir), config);
        Assert.Equal(reference.Adapter.ParameterCount, ck3.ParameterCount);

        var resumed = new AdapterOnlyModel(seed: 2);
        new Trainer(resumed, data, options, full, resumed.Adapter.Save).Run(resumeFrom: Path.Combine(full, "checkpoints", "step-00000003"));
        foreach (var (a, b) in reference.Adapter.Parameters().Zip(resumed.Adapter.Parameters()))
            Assert.Equal(a.Data, b.Data);
        foreach (var (a, b) in final.Parameters().Zip(reference.Adapter.Parameters()))
            Assert.Equal(a.Data, b.Data);
    }
}
