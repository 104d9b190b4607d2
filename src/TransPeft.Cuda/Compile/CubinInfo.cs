using System.Buffers.Binary;
using System.Text.RegularExpressions;

namespace TransPeft.Cuda.Compile;

/// <summary>
/// Reads per-kernel resource usage out of a cubin, without a GPU and without NVIDIA's cuobjdump.
/// <para>
/// A cubin is an ELF file. Each kernel has a function symbol with code in <c>.text.&lt;kernel&gt;</c>; its static
/// shared memory is the (NOBITS) section <c>.nv.shared.&lt;kernel&gt;</c>. The section <c>.nv.info</c> holds
/// attributes for every function, <c>.nv.info.&lt;kernel&gt;</c> the kernel's own. An attribute is a format byte,
/// an attribute code and a 16-bit field: for EIFMT_SVAL (4) the field is a byte count and that many bytes follow;
/// for EIFMT_HVAL (3) the field is the value; EIFMT_NVAL (1) and EIFMT_BVAL (2) carry nothing more. Per-function
/// attributes in <c>.nv.info</c> are SVAL pairs (symbol index, value): EIATTR_REGCOUNT (0x2f), EIATTR_FRAME_SIZE
/// (0x11), EIATTR_MIN_STACK_SIZE (0x12), EIATTR_MAX_STACK_SIZE (0x23). In <c>.nv.info.&lt;kernel&gt;</c>:
/// EIATTR_CBANK_PARAM_SIZE (0x19, HVAL) and EIATTR_MAX_THREADS (0x05, SVAL of three u32) from __launch_bounds__.
/// </para>
/// Spill bytes are not stored in the cubin: ptxas prints them with <c>--ptxas-options=-v</c>, which the
/// <see cref="KernelCompiler"/> always passes, so they are parsed from the compile log when it is given. The log
/// also gives the kernel's own static shared memory: the <c>.nv.shared</c> section can be larger (for sm_90,
/// NVRTC 11.8 lays out a 1 KiB reserved area in it: 2048 bytes for a 1024-byte array).
/// </summary>
public static partial class CubinInfo
{
    private const byte FormatNval = 1, FormatBval = 2, FormatHval = 3, FormatSval = 4;
    private const byte AttrMaxThreads = 0x05, AttrFrameSize = 0x11, AttrMinStackSize = 0x12, AttrCbankParamSize = 0x19,
        AttrMaxStackSize = 0x23, AttrRegCount = 0x2f;

    /// <param name="cubin">The cubin bytes (from NVRTC or a file).</param>
    /// <param name="ptxasLog">NVRTC's log of a compile with <c>--ptxas-options=-v</c>, for spill counts; optional.</param>
    /// <param name="what">How to name the cubin in errors.</param>
    public static IReadOnlyList<CubinKernelInfo> Read(byte[] cubin, string? ptxasLog = null, string what = "cubin")
    {
        var elf = ElfFile.Parse(cubin, what);
        if (elf.Machine != ElfFile.MachineCuda)
            throw new FormatException($"{what}: ELF e_machine is {elf.Machine}, expected {ElfFile.MachineCuda} (EM_CUDA); this is not a cubin.");
        var symbols = elf.Symbols();

        var perFunction = new Dictionary<int, Dictionary<byte, int>>();
        if (elf.FindSection(".nv.info") is { } info)
        {
            foreach (var (format, attr, payload) in Attributes(elf.Data(info), what, ".nv.info"))
            {
                if (format != FormatSval || payload.Length < 8) continue;
                if (attr is not (AttrRegCount or AttrFrameSize or AttrMinStackSize or AttrMaxStackSize)) continue;
                var sym = (int)BinaryPrimitives.ReadUInt32LittleEndian(payload);
                var value = (int)BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]);
                if (!perFunction.TryGetValue(sym, out var d)) perFunction[sym] = d = [];
                d[attr] = value;
            }
        }

        var ptxas = ParsePtxasLog(ptxasLog);
        var kernels = new List<CubinKernelInfo>();
        foreach (var s in symbols)
        {
            if (s.Type != ElfSymbol.TypeFunc || !s.IsDefined) continue;
            // Kernels (entry points) have their own .nv.info.<name>; device functions that were not inlined do not.
            var kernelInfo = elf.FindSection(".nv.info." + s.Name);
            if (kernelInfo is null) continue;

            int paramBytes = 0;
            int? maxThreads = null;
            foreach (var (format, attr, payload) in Attributes(elf.Data(kernelInfo), what, kernelInfo.Name))
            {
                if (attr == AttrCbankParamSize && format == FormatHval) paramBytes = BinaryPrimitives.ReadUInt16LittleEndian(payload);
                else if (attr == AttrMaxThreads && format == FormatSval && payload.Length >= 12)
                    maxThreads = checked((int)(BinaryPrimitives.ReadUInt32LittleEndian(payload) *
                                               BinaryPrimitives.ReadUInt32LittleEndian(payload[4..]) *
                                               BinaryPrimitives.ReadUInt32LittleEndian(payload[8..])));
            }
            perFunction.TryGetValue(s.Index, out var attrs);
            int Get(byte a) => attrs is not null && attrs.TryGetValue(a, out var v) ? v : 0;
            var sharedSection = elf.FindSection(".nv.shared." + s.Name);
            var sectionBytes = sharedSection is null ? 0 : checked((int)sharedSection.Size);
            ptxas.TryGetValue(s.Name, out var report);
            kernels.Add(new CubinKernelInfo(
                s.Name,
                Registers: Get(AttrRegCount),
                StaticSharedBytes: report?.SharedBytes ?? sectionBytes,
                SharedSectionBytes: sectionBytes,
                FrameBytes: Get(AttrFrameSize),
                MaxStackBytes: Get(AttrMaxStackSize),
                ParamBytes: paramBytes,
                MaxThreadsPerBlock: maxThreads,
                SpillStoreBytes: report?.SpillStoreBytes,
                SpillLoadBytes: report?.SpillLoadBytes));
        }
        return kernels;
    }

    /// <summary>Splits an .nv.info section into (format, attribute, payload) records.</summary>
    private static List<(byte Format, byte Attr, byte[] Payload)> Attributes(ReadOnlySpan<byte> data, string what, string section)
    {
        var list = new List<(byte, byte, byte[])>();
        var p = 0;
        while (p + 4 <= data.Length)
        {
            var format = data[p];
            var attr = data[p + 1];
            var field = BinaryPrimitives.ReadUInt16LittleEndian(data[(p + 2)..]);
            switch (format)
            {
                case FormatSval:
                    if (p + 4 + field > data.Length)
                        throw new FormatException($"{what}: {section} attribute 0x{attr:x2} at offset {p} claims {field} bytes, past the section's end ({data.Length} bytes).");
                    list.Add((format, attr, data.Slice(p + 4, field).ToArray()));
                    p += 4 + field;
                    break;
                case FormatHval:
                    list.Add((format, attr, data.Slice(p + 2, 2).ToArray()));
                    p += 4;
                    break;
                case FormatNval:
                case FormatBval:
                    list.Add((format, attr, data.Slice(p + 2, 2).ToArray()));
                    p += 4;
                    break;
                default:
                    throw new FormatException($"{what}: {section} has an attribute of unknown format {format} at offset {p} (expected 1-4).");
            }
        }
        return list;
    }

    /// <summary>
    /// ptxas -v's report per function. "Compiling entry function 'NAME'" opens an entry's block, which holds
    /// "Function properties for NAME" + "N bytes stack frame, S bytes spill stores, L bytes spill loads" and
    /// "Used R registers[, M bytes smem][, ...]" (no smem part means none).
    /// </summary>
    internal static Dictionary<string, PtxasFunctionReport> ParsePtxasLog(string? log)
    {
        var result = new Dictionary<string, PtxasFunctionReport>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(log)) return result;
        string? entry = null, properties = null;
        PtxasFunctionReport Get(string name) => result.TryGetValue(name, out var r) ? r : new PtxasFunctionReport();
        foreach (var line in log.Split('\n'))
        {
            var ce = CompilingEntryLine().Match(line);
            if (ce.Success) { entry = ce.Groups[1].Value; continue; }
            var fp = FunctionPropertiesLine().Match(line);
            if (fp.Success) { properties = fp.Groups[1].Value.Trim().Trim('\''); continue; }
            var sp = SpillLine().Match(line);
            if (sp.Success && properties is not null)
            {
                result[properties] = Get(properties) with
                {
                    StackFrameBytes = int.Parse(sp.Groups[1].Value),
                    SpillStoreBytes = int.Parse(sp.Groups[2].Value),
                    SpillLoadBytes = int.Parse(sp.Groups[3].Value),
                };
                properties = null;
                continue;
            }
            var used = UsedLine().Match(line);
            if (used.Success && entry is not null)
            {
                var smem = SmemPart().Match(line);
                result[entry] = Get(entry) with
                {
                    Registers = int.Parse(used.Groups[1].Value),
                    SharedBytes = smem.Success ? int.Parse(smem.Groups[1].Value) : 0,
                };
            }
        }
        return result;
    }

    [GeneratedRegex(@"Compiling entry function '([^']+)'")]
    private static partial Regex CompilingEntryLine();

    [GeneratedRegex(@"Used (\d+) registers")]
    private static partial Regex UsedLine();

    [GeneratedRegex(@"(\d+) bytes smem")]
    private static partial Regex SmemPart();

    [GeneratedRegex(@"Function properties for (.+?)\s*$")]
    private static partial Regex FunctionPropertiesLine();

    [GeneratedRegex(@"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex SpillLine();
}
