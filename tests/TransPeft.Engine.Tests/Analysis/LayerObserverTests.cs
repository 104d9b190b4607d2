using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Analysis;

/// <summary>The CpuTransformer hook the update analysis relies on.</summary>
public class LayerObserverTests
{
    private sealed class Capture : ILayerObserver
    {
        public readonly List<(int Layer, float[] Attn, float[] H)> Attention = [];
        public readonly List<(int Layer, float[] Act, float[] Ffn)> Ffn = [];
        public void OnAttention(int layer, ReadOnlySpan<float> attentionOutput, ReadOnlySpan<float> h) => Attention.Add((layer, attentionOutput.ToArray(), h.ToArray()));
        public void OnFfn(int layer, ReadOnlySpan<float> activation, ReadOnlySpan<float> ffnOutput) => Ffn.Add((layer, activation.ToArray(), ffnOutput.ToArray()));
    }

    [Fact]
    public void ObserverSeesTheSubLayerOutputsThatBuildTheResidualStream()
    {
        var model = TinyModels.Model(31);
        var adapter = TinyModels.TrainedAdapter(model.Config);
        var cpu = new CpuTransformer(model, adapter);
        int b = 2, t = 5, c = model.Config.HiddenSize, inter = model.Config.IntermediateSize;
        var ids = TinyModels.RandomIds(b * t, model.Config.VocabSize, 4);
        var before = cpu.ForwardLogits(ids, b, t);
        var cap = new Capture();
        cpu.ForwardObserved(ids, b, t, cap);

        Assert.Equal([0, 1], cap.Attention.Select(x => x.Layer));
        Assert.Equal([0, 1], cap.Ffn.Select(x => x.Layer));
        Assert.All(cap.Ffn, x => Assert.Equal(b * t * inter, x.Act.Length));
        // x0 = embedding rows; h_l = x_l + attn_l; x_{l+1} = h_l + ffn_l.
        var x = new float[b * t * c];
        for (int i = 0; i < ids.Length; i++) model.Embed.Data.AsSpan(ids[i] * c, c).CopyTo(x.AsSpan(i * c));
        for (int l = 0; l < 2; l++)
        {
            var (_, attn, h) = cap.Attention[l];
            for (int k = 0; k < x.Length; k++) Assert.Equal(x[k] + attn[k], h[k], 5);
            var ffn = cap.Ffn[l].Ffn;
            for (int k = 0; k < x.Length; k++) x[k] = h[k] + ffn[k];
        }
        // Observing changes nothing, and the observer is released afterwards.
        Assert.Equal(before, cpu.ForwardLogits(ids, b, t));
        Assert.Equal(2, cap.Attention.Count);
    }
}
