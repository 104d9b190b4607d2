using TransPeft.Engine.Model.Bert;

namespace TransPeft.Engine.Tests.Bert;

/// <summary>The encoder's update analysis (the real-pair experiment's table) on weights with a known change.</summary>
public sealed class BertUpdateTests
{
    [Fact]
    public void Relative_change_and_cosine_are_those_of_a_known_update()
    {
        var dir = BertClassifierTests.TinyBertFolder(3);
        var before = BertModel.Load(dir);
        var after = BertModel.Load(dir);
        // FFN weights scaled by 1.5 (relative change 0.5, same direction); the query of layer 0 negated (change 2,
        // cosine -1) and layer 1's left alone, so the averages over the two layers are 1 and 0.
        foreach (var layer in after.Params.Layers)
            foreach (var w in new[] { layer.Intermediate.Weight.Data, layer.Output.Weight.Data })
                for (int i = 0; i < w.Length; i++) w[i] *= 1.5f;
        var q0 = after.Params.Layers[0].Query.Weight.Data;
        for (int i = 0; i < q0.Length; i++) q0[i] = -q0[i];

        var rows = BertUpdate.Compare(before, after).ToDictionary(r => r.Module);
        Assert.Equal(0.5, rows["FFN in (intermediate)"].RelativeChange, 6);
        Assert.Equal(1.0, rows["FFN out (output)"].Cosine, 6);
        Assert.Equal(1.0, rows["attention query"].RelativeChange, 6);
        Assert.Equal(0.0, rows["attention query"].Cosine, 6);
        Assert.Equal(0.0, rows["attention key"].RelativeChange);
        Assert.Equal(1.0, rows["attention value"].Cosine, 6);
    }
}
