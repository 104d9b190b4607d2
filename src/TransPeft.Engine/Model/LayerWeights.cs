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

    /// <summary>
    /// Assembles layer <paramref name="layer"/> from a source of tensors, by Hugging Face name and expected shape:
    /// <paramref name="tensor"/> for the weights every layer has, <paramref name="bias"/> for the optional biases.
    /// Loading from a file and random initialisation differ only in these two functions.
    /// </summary>
    public static LayerWeights Build(ModelConfig c, int layer, Func<string, int[], Parameter> tensor, Func<string, int[], Parameter?> bias)
    {
        string p = $"model.layers.{layer}.";
        int h = c.HiddenSize, q = c.QDim, kv = c.KvDim, i = c.IntermediateSize;
        return new LayerWeights
        {
            InputNorm = tensor(p + "input_layernorm.weight", [h]),
            Q = tensor(p + "self_attn.q_proj.weight", [q, h]),
            K = tensor(p + "self_attn.k_proj.weight", [kv, h]),
            V = tensor(p + "self_attn.v_proj.weight", [kv, h]),
            O = tensor(p + "self_attn.o_proj.weight", [h, q]),
            QBias = bias(p + "self_attn.q_proj.bias", [q]),
            KBias = bias(p + "self_attn.k_proj.bias", [kv]),
            VBias = bias(p + "self_attn.v_proj.bias", [kv]),
            OBias = bias(p + "self_attn.o_proj.bias", [h]),
            PostNorm = tensor(p + "post_attention_layernorm.weight", [h]),
            Gate = tensor(p + "mlp.gate_proj.weight", [i, h]),
            Up = tensor(p + "mlp.up_proj.weight", [i, h]),
            Down = tensor(p + "mlp.down_proj.weight", [h, i]),
        };
    }

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
