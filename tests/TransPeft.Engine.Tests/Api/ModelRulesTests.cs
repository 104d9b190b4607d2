using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cuda.Backend;
using TransPeft.Engine.Tests.Cuda.Emulation;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Api;

/// <summary>
/// The model-level rules (shapes, token range, positions, sliding window, adapter layers) live in ModelRules; both
/// backends refuse the same inputs with the same message. The CUDA backend's code runs on the emulated device.
/// </summary>
public sealed class ModelRulesTests
{
    private static ModelConfig Mistral() => BackendParityTests.Config() with { ModelType = "mistral", SlidingWindow = 6, MaxPositionEmbeddings = 16 };

    public static TheoryData<string, int, int, int[]> BadInputs() => new()
    {
        { "wrong id count", 2, 3, new int[5] },
        { "token id past the vocabulary", 1, 3, [1, 2, 999] },
        { "negative token id", 1, 2, [-1, 2] },
        { "past the sliding window", 1, 7, new int[7] },
        { "past max_position_embeddings", 1, 17, new int[17] },
        { "empty batch", 0, 3, [] },
    };

    [Theory, MemberData(nameof(BadInputs))]
    public void Both_backends_refuse_the_same_inputs_with_the_same_message(string why, int b, int t, int[] ids)
    {
        var c = Mistral();
        var model = BackendParityTests.Model(c, 1);
        var cpu = CpuTransformer.ForInference(model);
        using var gpu = CudaTransformer.ForInference(new EmulatedDevice(), model, ownsDevice: true);
        var cpuError = Record.Exception(() => cpu.ForwardLogits(ids, b, t));
        var gpuError = Record.Exception(() => gpu.ForwardLogits(ids, b, t));
        Assert.True(cpuError is ArgumentException, $"{why}: the CPU accepted it ({cpuError})");
        Assert.Equal(cpuError.GetType(), gpuError?.GetType());
        Assert.Equal(cpuError.Message, gpuError!.Message);
        // The loss path checks the same way.
        var batch = new TokenBatch(Math.Max(b, 0), t, ids, ids);
        Assert.Equal(Record.Exception(() => cpu.Loss(batch))?.Message, Record.Exception(() => gpu.Loss(batch))?.Message);
    }

    [Fact]
    public void Both_backends_refuse_an_adapter_of_another_depth_with_the_same_message()
    {
        var c = Mistral();
        var model = BackendParityTests.Model(c, 1);
        var deeper = LoraAdapter.Create(c with { NumLayers = c.NumLayers + 1 }, new LoraConfig { R = 2, Alpha = 4, TargetModules = ["q_proj"] }, 1);
        var cpu = Assert.Throws<ArgumentException>(() => CpuTransformer.ForInference(model, deeper));
        var gpu = Assert.Throws<ArgumentException>(() => CudaTransformer.ForInference(new EmulatedDevice(), model, deeper, ownsDevice: true));
        Assert.Equal(cpu.Message, gpu.Message);
    }

    [Fact]
    public void A_second_model_object_on_the_same_weights_does_not_change_the_first()
    {
        var model = TinyModels.Model(3);
        var batch = TokenBatch.FromIds(2, 6, TinyModels.RandomIds(12, model.Config.VocabSize, 1));
        // A full fine-tuning trainer first, then a LoRA one on the same weights: the LoRA constructor used to switch
        // the base gradient buffers off, leaving the first trainer with trainable parameters that had none.
        var full = new CpuTransformer(model, fullFineTune: true);
        var lora = new CpuTransformer(model, TinyModels.TrainedAdapter(model.Config));
        Assert.All(full.TrainableParameters, p => Assert.NotNull(p.Grad));
        full.ZeroGrad();
        full.ForwardBackward(batch, 1f, StepContext.Eval with { Training = true });
        Assert.Contains(model.Parameters(), p => p.Grad!.Any(g => g != 0));
        // ... and the LoRA backward leaves base gradients alone even though the buffers now exist.
        full.ZeroGrad();
        lora.ZeroGrad();
        lora.ForwardBackward(batch, 1f, StepContext.Eval with { Training = true });
        Assert.All(model.Parameters(), p => Assert.All(p.Grad!, g => Assert.Equal(0f, g)));
        Assert.Contains(lora.TrainableParameters, p => p.Grad!.Any(g => g != 0));
    }
}

/// <summary>The CUDA backend behind the inference contract (the KV-cached decoder: device cache slots, the adapter
/// pool, decode kernels), run on the emulated device in exact mode, where only summation order differs from the CPU.</summary>
public sealed class CudaInferenceContractTests
{
    [Fact]
    public void Greedy_generation_scoring_and_hidden_states_on_the_CUDA_contract_match_the_CPU()
    {
        var c = BackendParityTests.Config();
        var model = BackendParityTests.Model(c, 7);
        var adapter = BackendParityTests.Adapter(c, 8);
        var cpu = CpuTransformer.ForInference(model, adapter);
        using var decoder = new CudaKvDecoder(new EmulatedDevice(exactBf16: true), model, new CudaKvOptions(Slots: 2, Capacity: 32, AdapterSlots: 2), ownsDevice: true);
        var gpu = new CudaKvInference(decoder, adapter);
        var prompt = TinyModels.RandomIds(5, c.VocabSize, 3);
        var options = new global::TransPeft.Engine.Inference.GenerationOptions { Greedy = true, MaxNewTokens = 8, EosTokenIds = [] };
        var want = new global::TransPeft.Engine.Inference.Generator(cpu, null).Generate(prompt, options);
        // Three generations through a decoder of two KV slots: each gives its device slot back when it ends.
        for (int i = 0; i < 3; i++)
        {
            var got = new global::TransPeft.Engine.Inference.Generator(gpu, null).Generate(prompt, options);
            Assert.Equal(want.TokenIds, got.TokenIds);
        }
        Assert.Equal(0, decoder.SlotsInUse);

        var batch = TokenBatch.FromIds(1, 6, TinyModels.RandomIds(6, c.VocabSize, 4));
        object? s1 = null, s2 = null;
        var (l1, n1) = cpu.Loss(batch, ref s1);
        var (l2, n2) = gpu.Loss(batch, ref s2);
        Assert.Equal(n1, n2);
        Assert.Equal(l1, l2, 3);

        var hWant = new float[6 * c.HiddenSize];
        var hGot = new float[6 * c.HiddenSize];
        cpu.Forward(batch.InputIds, 1, 6, default, hWant, ref s1);
        gpu.Forward(batch.InputIds, 1, 6, default, hGot, ref s2);
        ParityCheck.Elementwise("hidden states", hWant, hGot, 1e-4 * DeviceScratch.MaxAbs(hWant), 1e-4);
    }
}
