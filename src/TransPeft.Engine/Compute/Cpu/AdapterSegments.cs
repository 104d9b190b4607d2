namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// The rows of a mixed-adapter batch cut into maximal runs of the same adapter slot (SGMV's "segments"):
/// segment i covers rows [Starts[i], Starts[i+1]) and uses slot Slots[i], or no adapter when Slots[i] is -1.
/// A scheduler that groups requests by adapter gets one segment per adapter, so each adapter's weights are
/// streamed once per batch; an interleaved batch still works, one short segment per run. The CUDA kernels
/// (kernels/lora_multi.cu) take exactly these two arrays.
/// </summary>
internal sealed class AdapterSegments
{
    /// <summary>Row boundaries, Count + 1 entries, Starts[0] = 0 and Starts[Count] = the row count.</summary>
    public int[] Starts { get; }

    /// <summary>Adapter slot of each segment, -1 for rows that use the base model alone.</summary>
    public int[] Slots { get; }

    public int Count => Slots.Length;
    public int Rows => Starts[^1];

    private AdapterSegments(int[] starts, int[] slots) { Starts = starts; Slots = slots; }

    /// <summary>Segments of <paramref name="rowSlots"/> (one slot per row, -1 for none; no other negative value).</summary>
    public static AdapterSegments FromRowSlots(ReadOnlySpan<int> rowSlots)
    {
        var starts = new List<int>();
        var slots = new List<int>();
        for (int i = 0; i < rowSlots.Length; i++)
        {
            if (rowSlots[i] < -1) throw new ArgumentOutOfRangeException(nameof(rowSlots), $"row {i}: adapter slot {rowSlots[i]}; expected -1 (none) or a slot index >= 0");
            if (i > 0 && rowSlots[i] == rowSlots[i - 1]) continue;
            starts.Add(i);
            slots.Add(rowSlots[i]);
        }
        starts.Add(rowSlots.Length);
        return new AdapterSegments([.. starts], [.. slots]);
    }
}
