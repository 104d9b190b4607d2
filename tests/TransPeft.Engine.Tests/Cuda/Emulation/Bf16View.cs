using TransPeft.Engine.IO;

namespace TransPeft.Engine.Tests.Cuda.Emulation;

/// <summary>
/// A bf16 tensor in emulated device memory. Writes round to bf16 (nearest even) as the kernels do; in the emulator's
/// exact mode the unrounded fp32 value is also kept in a shadow and returned by later reads, so a whole model runs
/// at fp32 precision through the very same buffers, launches and GEMMs (the CUDA backend's orchestration can then be
/// compared with the CPU reference to fp32 accuracy).
/// </summary>
internal readonly ref struct Bf16View
{
    private readonly Span<ushort> _bits;
    private readonly Span<float> _shadow;
    private readonly Span<bool> _valid;

    public Bf16View(Span<ushort> bits, Span<float> shadow, Span<bool> valid)
    {
        _bits = bits;
        _shadow = shadow;
        _valid = valid;
    }

    public int Length => _bits.Length;

    public float this[long i]
    {
        get => !_valid.IsEmpty && _valid[(int)i] ? _shadow[(int)i] : BFloat16.ToSingle(_bits[(int)i]);
        set
        {
            _bits[(int)i] = BFloat16.FromSingle(value);
            if (_valid.IsEmpty) return;
            _shadow[(int)i] = value;
            _valid[(int)i] = true;
        }
    }

    /// <summary>Copies element i of <paramref name="from"/> exactly (bits and shadow).</summary>
    public void CopyElement(long i, Bf16View from, long j)
    {
        _bits[(int)i] = from._bits[(int)j];
        if (_valid.IsEmpty) return;
        bool v = !from._valid.IsEmpty && from._valid[(int)j];
        _valid[(int)i] = v;
        if (v) _shadow[(int)i] = from._shadow[(int)j];
    }

    public bool IsEmpty => _bits.IsEmpty;
}
