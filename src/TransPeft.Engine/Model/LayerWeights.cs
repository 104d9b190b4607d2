namespace TransPeft.Engine.Model;

/// <summary>The tensors of one decoder layer. A bias is present exactly when the file holds one.</summary>
internal sealed class LayerWeights
{
    public required Parameter InputNorm { get; init; }
    public required Parameter Q { get; init; }
    public required Parameter K { get; init; }
    public required Parameter V { get; init; }
    public required Parameter O { get; init; }
    public Parameter? QBias { get; init; }
    public Parameter? KBias { get; init; }
    public Parameter? VBias { get; init; }
    public Parameter? OBias { get; init; }
    public required Parameter PostNorm { get; init; }
    public required Parameter Gate { get; init; }
    public required Parameter Up { get; init; }
    public required Parameter Down { get; init; }

    public Parameter Weight(Projection p) => p switch
    {
        Projection.Q => Q, Projection.K => K, Projection.V => V, Projection.O => O,
        Projection.Gate => Gate, Projection.Up => Up, _ => Down,
    };

    public Parameter? Bias(Projection p) => p switch
    {
        Projection.Q => QBias, Projection.K => KBias, Projection.V => VBias, Projection.O => OBias, _ => null,
    };

    public IEnumerable<Parameter> All()
    {
        yield return InputNorm;
        foreach (var p in ProjectionNames.All)
        {
            yield return Weight(p);
            if (Bias(p) is { } b) yield return b;
        }
        yield return PostNorm;
    }
}
