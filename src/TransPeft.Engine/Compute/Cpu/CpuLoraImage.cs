using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// One adapter as the CPU's batched decoder reads it: the CPU form of the CUDA adapter pool's slot. Every module of
/// the adapter lies in one pinned block, A [r, in] then Bᵀ [r, out] per module, in float32 or bf16.
/// <list type="bullet">
/// <item>B is stored transposed so that the expand (y += s·t·Bᵀ, depth r) is r axpys over the output row instead of one
/// lane sum per output (<see cref="MixedLora"/>): at r = 16 the lane sums were most of the expand's time.</item>
/// <item>One block per adapter: in a batch of many distinct adapters each row streams its own adapter's weights, and a
/// contiguous block is what the hardware prefetcher streams best.</item>
/// <item>bf16 halves those bytes (the CUDA pool's format; the session's <c>AdapterPrecision</c>). The weights are
/// widened to float32 as they are loaded and the arithmetic is float32.</item>
/// </list>
/// Built when the adapter is loaded (part of its load time) or on its first batched step, refreshed in place by a hot
/// swap. Memory: the adapter's parameter count times 4 bytes (float32) or 2 (bf16), beside the adapter itself.
/// </summary>
internal sealed unsafe class CpuLoraImage
{
    private readonly LoraSlot[] _slots; // [layer * 7 + projection]; Rank 0 where the adapter has no module
    private readonly Array _block;      // pinned float[] or ushort[]: kept alive here, the slots hold raw pointers into it

    private CpuLoraImage(LoraSlot[] slots, Array block) { _slots = slots; _block = block; }

    /// <summary>The image of <paramref name="adapter"/>'s weights, in bf16 (rounded to nearest even) or float32.</summary>
    public static CpuLoraImage Build(LoraAdapter adapter, bool bf16) => Build(adapter.Modules(), adapter.NumLayers, bf16);

    /// <summary>The image of a set of modules (at most one per layer and projection) of a model with <paramref name="numLayers"/> layers.</summary>
    public static CpuLoraImage Build(IEnumerable<LoraModule> modules, int numLayers, bool bf16)
    {
        var list = modules.ToList();
        long total = 0;
        foreach (var m in list) total += (long)m.Rank * (m.In + m.Out);
        int elements = checked((int)total);
        float[]? f32 = bf16 ? null : GC.AllocateUninitializedArray<float>(elements, pinned: true);
        ushort[]? b16 = bf16 ? GC.AllocateUninitializedArray<ushort>(elements, pinned: true) : null;
        var slots = new LoraSlot[numLayers * ProjectionNames.All.Length];
        // Pinned arrays never move, so the slots may hold raw addresses into them.
        void* basePtr = bf16 ? Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(b16!)) : Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(f32!));
        int size = bf16 ? 2 : 4;
        long off = 0;
        foreach (var m in list)
        {
            int index = Index(m.Layer, m.Projection);
            if ((uint)m.Layer >= (uint)numLayers) throw new ArgumentException($"{m.Projection.FullName(m.Layer)}: layer {m.Layer} outside the model's {numLayers} layers");
            if (slots[index].Rank != 0) throw new ArgumentException($"{m.Projection.FullName(m.Layer)}: two modules for one projection");
            long aElems = (long)m.Rank * m.In;
            slots[index] = new LoraSlot((byte*)basePtr + off * size, (byte*)basePtr + (off + aElems) * size, m.Rank, m.In, m.Out, m.Scaling, bf16, m.Layer, m.Projection);
            off += (long)m.Rank * (m.In + m.Out);
        }
        var image = new CpuLoraImage(slots, bf16 ? b16! : f32!);
        image.Refresh(list);
        return image;
    }

    /// <summary>Copies the weights of modules of the same shape (a hot swap in place); the block keeps its address.</summary>
    public void Refresh(LoraAdapter adapter) => Refresh(adapter.Modules());

    private void Refresh(IEnumerable<LoraModule> modules)
    {
        foreach (var m in modules)
        {
            var s = _slots[Index(m.Layer, m.Projection)];
            if (s.Rank != m.Rank || s.In != m.In || s.Out != m.Out)
                throw new ArgumentException($"{m.Projection.FullName(m.Layer)}: [{m.Out}x{m.Rank}]·[{m.Rank}x{m.In}] does not fit the image's [{s.Out}x{s.Rank}]·[{s.Rank}x{s.In}]");
            int r = m.Rank, inDim = m.In, outDim = m.Out;
            float[] a = m.A.Data, b = m.B.Data;
            if (s.Bf16)
            {
                ushort* pa = (ushort*)s.A, pbt = (ushort*)s.Bt;
                for (long i = 0; i < (long)r * inDim; i++) pa[i] = BFloat16.FromSingle(a[i]);
                for (int o = 0; o < outDim; o++)
                    for (int j = 0; j < r; j++) pbt[(long)j * outDim + o] = BFloat16.FromSingle(b[(long)o * r + j]);
            }
            else
            {
                float* pa = (float*)s.A, pbt = (float*)s.Bt;
                a.AsSpan(0, r * inDim).CopyTo(new Span<float>(pa, r * inDim));
                for (int o = 0; o < outDim; o++)
                    for (int j = 0; j < r; j++) pbt[(long)j * outDim + o] = b[(long)o * r + j];
            }
        }
    }

    /// <summary>The module for a layer's projection (<see cref="LoraSlot.Rank"/> 0 when the adapter does not adapt it).</summary>
    public LoraSlot this[int layer, Projection p] => _slots[Index(layer, p)];

    private static int Index(int layer, Projection p) => layer * ProjectionNames.All.Length + (int)p;
}

/// <summary>
/// One adapter module as <see cref="MixedLora"/> reads it: A [r, in] and Bᵀ [r, out] (float32, or bf16 when
/// <see cref="Bf16"/>) at raw addresses inside a <see cref="CpuLoraImage"/>, which must stay alive while it is used.
/// The default value (rank 0) stands for "this adapter does not adapt the projection".
/// </summary>
internal readonly unsafe struct LoraSlot(void* a, void* bt, int rank, int inDim, int outDim, float scaling, bool bf16, int layer, Projection projection)
{
    public void* A { get; } = a;
    public void* Bt { get; } = bt;
    public int Rank { get; } = rank;
    public int In { get; } = inDim;
    public int Out { get; } = outDim;
    public float Scaling { get; } = scaling;
    public bool Bf16 { get; } = bf16;
    public int Layer { get; } = layer;
    public Projection Projection { get; } = projection;
}
