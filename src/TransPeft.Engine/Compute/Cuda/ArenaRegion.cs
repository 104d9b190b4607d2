namespace TransPeft.Engine.Compute.Cuda;

/// <summary>A named tensor inside an arena: byte offset from the arena's base, element count and size.</summary>
internal readonly record struct ArenaRegion(string Name, long Offset, long Elements, int ElementSize)
{
    public long Bytes => Elements * ElementSize;
    public long End => Offset + Bytes;
    public override string ToString() => $"{Name} @{Offset} ({Elements} x {ElementSize} B)";
}
