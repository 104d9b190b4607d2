using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// Weights rounded to bf16 in place. The GPU stores weights in bf16; rounding the CPU reference's weights the same
/// way leaves activation rounding (and summation order) as the only difference between the two backends, which is
/// what the parity tolerances are about.
/// </summary>
internal static class Bf16Models
{
    public static void Round(IEnumerable<Parameter> parameters)
    {
        foreach (var p in parameters)
            for (int i = 0; i < p.Data.Length; i++) p.Data[i] = BFloat16.ToSingle(BFloat16.FromSingle(p.Data[i]));
    }

    public static TransformerModel Round(TransformerModel m)
    {
        Round(m.Parameters());
        return m;
    }

    public static LoraAdapter Round(LoraAdapter a)
    {
        Round(a.Parameters());
        return a;
    }

    public static float[] Rounded(float[] values) => values.Select(v => BFloat16.ToSingle(BFloat16.FromSingle(v))).ToArray();
}
