namespace TransPeft.Cuda.Compile;

/// <summary>One ELF symbol.</summary>
internal sealed record ElfSymbol(int Index, string Name, byte Info, byte Other, ushort SectionIndex, ulong Value, ulong Size)
{
    public const int TypeFunc = 2;

    public int Type => Info & 0xf;
    public int Binding => Info >> 4;
    public bool IsDefined => SectionIndex != 0;
}
