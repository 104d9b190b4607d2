using System.Runtime.CompilerServices;

namespace TransPeft.Engine.TransPeft;

/// <summary>
/// The engine's one convention for drawing training-time random decisions with Philox-4x32-10,
/// shared by the CPU backend and the CUDA kernels (kernels/prelude.cuh mirrors it):
/// <code>
///   key     = (seed low 32 bits, seed high 32 bits)
///   counter = (element / 4, lane, step, tag &lt;&lt; 24 | microBatch)
///   word    = output[element % 4];  u = (word >> 8) * 2^-24;  the event "fires" when u &lt; p
/// </code>
/// lane is the decoder layer for FFN masks and drops, and layer * 8 + projection for LoRA dropout.
/// </summary>
public readonly record struct RandomStream(ulong Seed, uint Step, uint MicroBatch)
{
    public const uint TagFfnMask = 1, TagLayerDrop = 2, TagLoraDropout = 3;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Uniform(uint tag, uint lane, uint element)
    {
        var (a, b, c, d) = Philox4x32.Generate(element >> 2, lane, Step, (tag << 24) | (MicroBatch & 0xFFFFFF),
            (uint)Seed, (uint)(Seed >> 32));
        uint word = (element & 3) switch { 0 => a, 1 => b, 2 => c, _ => d };
        return Philox4x32.ToUniform(word);
    }

    /// <summary>Four consecutive uniforms for elements 4q .. 4q+3 (one generator call).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public (float, float, float, float) Uniform4(uint tag, uint lane, uint quad)
    {
        var (a, b, c, d) = Philox4x32.Generate(quad, lane, Step, (tag << 24) | (MicroBatch & 0xFFFFFF),
            (uint)Seed, (uint)(Seed >> 32));
        return (Philox4x32.ToUniform(a), Philox4x32.ToUniform(b), Philox4x32.ToUniform(c), Philox4x32.ToUniform(d));
    }

    /// <summary>
    /// dst[k] = 0 where the event fires for element first + k (probability p), else <paramref name="keepValue"/>.
    /// One generator call serves four consecutive elements, exactly as <see cref="Uniform"/> would draw them.
    /// </summary>
    public void FillKeep(uint tag, uint lane, uint first, Span<float> dst, float p, float keepValue)
    {
        int k = 0;
        while (k < dst.Length)
        {
            uint e = first + (uint)k;
            var (a, b, c, d) = Uniform4(tag, lane, e >> 2);
            for (int j = (int)(e & 3); j < 4 && k < dst.Length; j++, k++)
            {
                float u = j switch { 0 => a, 1 => b, 2 => c, _ => d };
                dst[k] = u < p ? 0f : keepValue;
            }
        }
    }
}
