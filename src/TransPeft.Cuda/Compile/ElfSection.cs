namespace TransPeft.Cuda.Compile;

/// <summary>One ELF section header.</summary>
internal sealed record ElfSection(int Index, string Name, uint Type, ulong Flags, long Offset, long Size, uint Link, uint Info, long EntrySize);
