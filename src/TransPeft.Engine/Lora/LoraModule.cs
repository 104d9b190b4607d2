using TransPeft.Engine.Model;

namespace TransPeft.Engine.Lora;

/// <summary>
/// The low-rank update of one projection: y += ((x · Aᵀ) · Bᵀ) * scaling, A [r, in], B [out, r].
/// Multiplying through the rank-r side first costs r * (in + out) per token instead of in * out.
/// </summary>
internal sealed class LoraModule(int layer, Projection projection, Parameter a, Parameter b, float scaling, double dropout = 0)
{
    public int Layer { get; } = layer;
    public Projection Projection { get; } = projection;
    public Parameter A { get; } = a;
    public Parameter B { get; } = b;
    public float Scaling { get; } = scaling;
    /// <summary>LoRA dropout probability on the module input (training only; inverted-dropout scaling).</summary>
    public double Dropout { get; } = dropout;
    public int Rank => A.Shape[0];
    public int In => A.Shape[1];
    public int Out => B.Shape[0];

    public string PeftKeyA => $"base_model.model.{Projection.FullName(Layer)}.lora_A.weight";
    public string PeftKeyB => $"base_model.model.{Projection.FullName(Layer)}.lora_B.weight";
}
