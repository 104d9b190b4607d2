namespace TransPeft.Engine.Model;

/// <summary>The seven linear projections of a decoder layer, in Hugging Face module order.</summary>
public enum Projection { Q = 0, K = 1, V = 2, O = 3, Gate = 4, Up = 5, Down = 6 }

public static class ProjectionNames
{
    public static readonly Projection[] All = [Projection.Q, Projection.K, Projection.V, Projection.O, Projection.Gate, Projection.Up, Projection.Down];

    /// <summary>Short module name as PEFT's target_modules uses it: q_proj ... down_proj.</summary>
    public static string ShortName(this Projection p) => p switch
    {
        Projection.Q => "q_proj", Projection.K => "k_proj", Projection.V => "v_proj", Projection.O => "o_proj",
        Projection.Gate => "gate_proj", Projection.Up => "up_proj", _ => "down_proj",
    };

    /// <summary>Module path inside a layer: self_attn.q_proj ... mlp.down_proj.</summary>
    public static string ModulePath(this Projection p) => (p <= Projection.O ? "self_attn." : "mlp.") + p.ShortName();

    /// <summary>Full module name as PEFT sees it: model.layers.{i}.self_attn.q_proj.</summary>
    public static string FullName(this Projection p, int layer) => $"model.layers.{layer}.{p.ModulePath()}";

    public static bool IsFfn(this Projection p) => p >= Projection.Gate;

    public static bool TryParseShort(string s, out Projection p)
    {
        foreach (var x in All) if (x.ShortName() == s) { p = x; return true; }
        p = default; return false;
    }
}
