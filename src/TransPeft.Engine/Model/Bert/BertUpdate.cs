using TransPeft.Engine.Analysis;

namespace TransPeft.Engine.Model.Bert;

/// <summary>How far each kind of encoder weight moved between two versions of one BERT architecture.</summary>
public static class BertUpdate
{
    /// <summary>
    /// Per kind of weight (attention query/key/value/output, FFN in/out): the relative change ‖W_new − W_old‖/‖W_old‖
    /// and the cosine of the two, each averaged over layers (accumulated in float64).
    /// </summary>
    public static IReadOnlyList<(string Module, double RelativeChange, double Cosine)> Compare(BertModel oldModel, BertModel newModel)
    {
        int n = oldModel.Params.Layers.Length;
        if (newModel.Params.Layers.Length != n)
            throw new ArgumentException($"the models have {n} and {newModel.Params.Layers.Length} layers; only versions of one architecture compare");
        var kinds = new (string Name, Func<BertLayerParams<float>, BertTensor<float>> Get)[]
        {
            ("attention query", l => l.Query.Weight), ("attention key", l => l.Key.Weight), ("attention value", l => l.Value.Weight),
            ("attention output", l => l.AttentionOutput.Weight), ("FFN in (intermediate)", l => l.Intermediate.Weight), ("FFN out (output)", l => l.Output.Weight),
        };
        var result = new List<(string, double, double)>();
        foreach (var (name, get) in kinds)
        {
            double rel = 0, cos = 0;
            for (int l = 0; l < n; l++)
            {
                var a = get(oldModel.Params.Layers[l]).Data;
                var b = get(newModel.Params.Layers[l]).Data;
                if (a.Length != b.Length) throw new ArgumentException($"layer {l} {name}: {a.Length} vs {b.Length} weights");
                var change = WeightChange.Of(a, b);
                rel += change.Relative / n;
                cos += change.Cosine / n;
            }
            result.Add((name, rel, cos));
        }
        return result;
    }
}
