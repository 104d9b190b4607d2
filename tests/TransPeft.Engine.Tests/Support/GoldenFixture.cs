using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Support;

/// <summary>One golden fixture (Fixtures/&lt;name&gt;, copied from shared/fixtures): computed in float64 by libtorch autograd.</summary>
internal sealed class GoldenFixture : IDisposable
{
    public string Dir { get; }
    public TransformerModel Model { get; }
    public SafetensorsReader Expected { get; }
    public int B { get; }
    public int T { get; }
    public int[] Ids { get; }
    public int[] Labels { get; }
    public float[][] Masks { get; }
    public bool[] Dropped { get; }

    public GoldenFixture(string name)
    {
        Dir = Path.Combine(AppContext.BaseDirectory, "Fixtures", name);
        Model = TransformerModel.Load(Path.Combine(Dir, "model"));
        Expected = SafetensorsReader.Open(Path.Combine(Dir, "expected.safetensors"));
        using (var inputs = SafetensorsReader.Open(Path.Combine(Dir, "inputs.safetensors")))
        {
            var shape = inputs.GetInfo("ids").Shape;
            B = (int)shape[0]; T = (int)shape[1];
            Ids = Array.ConvertAll(inputs.ReadInt64("ids"), x => (int)x);
            var lm = inputs.ReadFloat32("label_mask");
            Labels = new int[Ids.Length];
            for (int i = 0; i < Ids.Length; i++) Labels[i] = lm[i] == 1f ? Ids[i] : TokenBatch.IgnoreIndex;
        }
        using (var masks = SafetensorsReader.Open(Path.Combine(Dir, "masks.safetensors")))
        {
            int layers = Model.Config.NumLayers;
            Masks = new float[layers][];
            for (int l = 0; l < layers; l++) Masks[l] = masks.ReadFloat32($"ffn_mask.{l}");
            Dropped = Array.ConvertAll(masks.ReadFloat32("ffn_drop"), x => x == 1f);
        }
    }

    public LoraAdapter LoadAdapter() => LoraAdapter.Load(Path.Combine(Dir, "adapter"), Model.Config);
    public TokenBatch Batch => new(B, T, Ids, Labels);
    public ExplicitFfnPerturbation Perturbation => new(Masks, Dropped);
    public double ExpectedScalar(string name) => Expected.ReadFloat64(name)[0];

    public static IEnumerable<object[]> Names() => [["llama-mha"], ["qwen2-gqa-tied"]];

    public void Dispose() => Expected.Dispose();
}
