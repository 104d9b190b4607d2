using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Analysis;

/// <summary>
/// Accumulates one model's per-layer statistics over the analysis batches. The old model's recorder keeps the
/// current batch's attention and FFN outputs of every layer; the new model's recorder (given the old one as
/// <c>reference</c>) compares its own outputs with them token by token as they are produced.
/// </summary>
internal sealed class ActivationRecorder(ModelConfig config, ActivationRecorder? reference) : ILayerObserver
{
    private readonly int _c = config.HiddenSize, _i = config.IntermediateSize;
    private int _n;
    private double[] _hNorm = [];

    /// <summary>Σ over tokens of |a_j| per layer and neuron.</summary>
    public double[][] NeuronAbsSum { get; } = NewTable(config.NumLayers, config.IntermediateSize);
    private readonly double[] _contributionSum = new double[config.NumLayers];
    private readonly long[] _contributionCount = new long[config.NumLayers];
    private readonly double[] _attCos = new double[config.NumLayers], _ffnCos = new double[config.NumLayers];
    private readonly long[] _attCount = new long[config.NumLayers], _ffnCount = new long[config.NumLayers];

    // The old model's outputs for the current batch (kept only when this recorder is the reference).
    private readonly float[][] _attOut = new float[config.NumLayers][], _ffnOut = new float[config.NumLayers][];

    private static double[][] NewTable(int rows, int cols) => Enumerable.Range(0, rows).Select(_ => new double[cols]).ToArray();

    public void BeginBatch(int n)
    {
        _n = n;
        if (_hNorm.Length != n) _hNorm = new double[n];
    }

    public void OnAttention(int layer, ReadOnlySpan<float> attentionOutput, ReadOnlySpan<float> h)
    {
        for (int t = 0; t < _n; t++) _hNorm[t] = Norm(h.Slice(t * _c, _c));
        if (reference is null) Keep(_attOut, layer, attentionOutput);
        else Compare(reference._attOut[layer], attentionOutput, _attCos, _attCount, layer);
    }

    public void OnFfn(int layer, ReadOnlySpan<float> activation, ReadOnlySpan<float> ffnOutput)
    {
        var sums = NeuronAbsSum[layer];
        for (int t = 0; t < _n; t++)
        {
            var row = activation.Slice(t * _i, _i);
            for (int j = 0; j < _i; j++) sums[j] += Math.Abs(row[j]);
            if (_hNorm[t] > 0)
            {
                _contributionSum[layer] += Norm(ffnOutput.Slice(t * _c, _c)) / _hNorm[t];
                _contributionCount[layer]++;
            }
        }
        if (reference is null) Keep(_ffnOut, layer, ffnOutput);
        else Compare(reference._ffnOut[layer], ffnOutput, _ffnCos, _ffnCount, layer);
    }

    private void Keep(float[][] store, int layer, ReadOnlySpan<float> values)
    {
        if (store[layer]?.Length != _n * _c) store[layer] = new float[_n * _c];
        values[..(_n * _c)].CopyTo(store[layer]);
    }

    /// <summary>Adds the per-token cosine similarities of this model's output with the reference's.</summary>
    private void Compare(float[]? other, ReadOnlySpan<float> mine, double[] cosSum, long[] count, int layer)
    {
        if (other is null || other.Length != _n * _c)
            throw new InvalidOperationException($"layer {layer}: the reference model produced no output for this batch (was its FFN dropped?)");
        for (int t = 0; t < _n; t++)
        {
            var a = other.AsSpan(t * _c, _c);
            var b = mine.Slice(t * _c, _c);
            double dot = 0, na = 0, nb = 0;
            for (int k = 0; k < _c; k++) { dot += (double)a[k] * b[k]; na += (double)a[k] * a[k]; nb += (double)b[k] * b[k]; }
            if (na == 0 || nb == 0) continue; // cosine undefined for a zero vector
            cosSum[layer] += dot / Math.Sqrt(na * nb);
            count[layer]++;
        }
    }

    private static double Norm(ReadOnlySpan<float> v)
    {
        double s = 0;
        foreach (var x in v) s += (double)x * x;
        return Math.Sqrt(s);
    }

    public double AttentionCosine(int layer) => _attCount[layer] == 0 ? double.NaN : _attCos[layer] / _attCount[layer];
    public double FfnCosine(int layer) => _ffnCount[layer] == 0 ? double.NaN : _ffnCos[layer] / _ffnCount[layer];
    public double FfnContribution(int layer) => _contributionCount[layer] == 0 ? double.NaN : _contributionSum[layer] / _contributionCount[layer];
}
