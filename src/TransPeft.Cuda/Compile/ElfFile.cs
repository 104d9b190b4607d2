using System.Buffers.Binary;
using System.Text;

namespace TransPeft.Cuda.Compile;

/// <summary>
/// A minimal reader for 64-bit little-endian ELF files: the header, the section table and the symbol tables.
/// Enough for cubins (NVIDIA's ELF flavour: OS ABI 0x33 "CUDA", machine 190 "EM_CUDA") and for checking which
/// symbols a shared library exports. Every offset is checked against the file before it is read, and a
/// malformed file is reported as a <see cref="FormatException"/> naming the file and the field.
/// </summary>
internal sealed class ElfFile
{
    public const uint SectionTypeSymtab = 2;
    public const uint SectionTypeDynsym = 11;
    public const uint SectionTypeNobits = 8;
    public const ushort MachineCuda = 190;

    private readonly byte[] _bytes;
    private readonly string _what;
    private readonly List<ElfSection> _sections = [];

    private ElfFile(byte[] bytes, string what)
    {
        _bytes = bytes;
        _what = what;
    }

    public ushort Machine { get; private set; }
    public byte OsAbi { get; private set; }
    public byte AbiVersion { get; private set; }
    public uint Flags { get; private set; }
    public IReadOnlyList<ElfSection> Sections => _sections;

    /// <param name="what">How to name the file in errors (a path, "cubin of softmax.cu").</param>
    public static ElfFile Parse(byte[] bytes, string what)
    {
        var f = new ElfFile(bytes, what);
        f.ReadHeaderAndSections();
        return f;
    }

    private void ReadHeaderAndSections()
    {
        var b = _bytes;
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw Bad("header", "is not an ELF file (no \\x7fELF magic)");
        if (b[4] != 2) throw Bad("e_ident[EI_CLASS]", $"is {b[4]}, expected 2 (64-bit)");
        if (b[5] != 1) throw Bad("e_ident[EI_DATA]", $"is {b[5]}, expected 1 (little-endian)");
        OsAbi = b[7];
        AbiVersion = b[8];
        Machine = U16(18);
        Flags = U32(48);
        var shoff = U64(40);
        var shentsize = U16(58);
        var shnum = U16(60);
        var shstrndx = U16(62);
        if (shnum == 0) return;
        if (shentsize < 64) throw Bad("e_shentsize", $"is {shentsize}, expected at least 64");
        if (shoff > (ulong)b.Length || (ulong)shnum * shentsize > (ulong)b.Length - shoff)
            throw Bad("e_shoff", $"section table ({shnum} x {shentsize} bytes at {shoff}) runs past the end of the file ({b.Length} bytes)");

        var raw = new List<(uint Name, uint Type, ulong Flags, ulong Offset, ulong Size, uint Link, uint Info, ulong EntSize)>();
        for (var i = 0; i < shnum; i++)
        {
            var o = (int)shoff + i * shentsize;
            raw.Add((U32(o), U32(o + 4), U64(o + 8), U64(o + 24), U64(o + 32), U32(o + 40), U32(o + 44), U64(o + 56)));
        }
        if (shstrndx >= shnum) throw Bad("e_shstrndx", $"is {shstrndx}, but there are {shnum} sections");
        var names = raw[shstrndx];
        CheckRange($"section {shstrndx} (.shstrtab)", names.Offset, names.Size);
        for (var i = 0; i < raw.Count; i++)
        {
            var s = raw[i];
            if (s.Type != SectionTypeNobits) CheckRange($"section {i}", s.Offset, s.Size);
            var name = ReadString(names.Offset, names.Size, s.Name, $"name of section {i}");
            _sections.Add(new ElfSection(i, name, s.Type, s.Flags, (long)s.Offset, (long)s.Size, s.Link, s.Info, (long)s.EntSize));
        }
    }

    public ElfSection? FindSection(string name) => _sections.FirstOrDefault(s => s.Name == name);

    /// <summary>The bytes of a section (empty for NOBITS sections such as .nv.shared.*).</summary>
    public ReadOnlySpan<byte> Data(ElfSection s) =>
        s.Type == SectionTypeNobits ? [] : _bytes.AsSpan((int)s.Offset, (int)s.Size);

    /// <summary>The symbols of the first section of type <paramref name="sectionType"/> (SYMTAB or DYNSYM).</summary>
    public IReadOnlyList<ElfSymbol> Symbols(uint sectionType = SectionTypeSymtab)
    {
        var table = _sections.FirstOrDefault(s => s.Type == sectionType);
        if (table is null) return [];
        if (table.EntrySize < 24) throw Bad($"section {table.Name}", $"has entry size {table.EntrySize}, expected 24");
        if (table.Link >= _sections.Count) throw Bad($"section {table.Name}", $"links to string table {table.Link}, which does not exist");
        var strings = _sections[(int)table.Link];
        var result = new List<ElfSymbol>();
        var count = table.Size / table.EntrySize;
        for (var i = 0; i < count; i++)
        {
            var o = (int)(table.Offset + i * table.EntrySize);
            var nameOffset = U32(o);
            var info = _bytes[o + 4];
            var other = _bytes[o + 5];
            var shndx = U16(o + 6);
            var value = U64(o + 8);
            var size = U64(o + 16);
            var name = ReadString((ulong)strings.Offset, (ulong)strings.Size, nameOffset, $"name of symbol {i} in {table.Name}");
            result.Add(new ElfSymbol(i, name, info, other, shndx, value, size));
        }
        return result;
    }

    private string ReadString(ulong tableOffset, ulong tableSize, uint offset, string field)
    {
        if (offset >= tableSize) throw Bad(field, $"string offset {offset} is outside its string table ({tableSize} bytes)");
        var start = (int)(tableOffset + offset);
        var end = Array.IndexOf(_bytes, (byte)0, start, (int)(tableSize - offset));
        if (end < 0) throw Bad(field, "string is not NUL-terminated inside its table");
        return Encoding.UTF8.GetString(_bytes, start, end - start);
    }

    private void CheckRange(string what, ulong offset, ulong size)
    {
        if (offset > (ulong)_bytes.Length || size > (ulong)_bytes.Length - offset)
            throw Bad(what, $"bytes {offset}..{offset + size} run past the end of the file ({_bytes.Length} bytes)");
    }

    private ushort U16(int o) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan(o, 2));
    private uint U32(int o) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan(o, 4));
    private ulong U64(int o) => BinaryPrimitives.ReadUInt64LittleEndian(_bytes.AsSpan(o, 8));

    private FormatException Bad(string field, string problem) => new($"{_what}: ELF {field} {problem}.");
}
