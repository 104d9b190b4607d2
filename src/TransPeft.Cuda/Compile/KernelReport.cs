using System.Text;
using System.Text.Json;

namespace TransPeft.Cuda.Compile;

/// <summary>
/// Compiles every kernel source for one architecture and lists what ptxas made of each kernel (registers,
/// static shared memory, stack frame, spills). Needs NVRTC, not a GPU: this is what <c>tpeft kernels</c> prints
/// and what CI checks for sm_80 and sm_90.
/// </summary>
public static class KernelReport
{
    public static IReadOnlyList<KernelReportEntry> Build(KernelSourceSet sources, string arch, KernelCompiler compiler)
    {
        var entries = new List<KernelReportEntry>();
        foreach (var file in sources.Files)
        {
            CompiledKernel compiled;
            try
            {
                compiled = compiler.Compile(file.Text, file.Name, arch, sources.Headers);
            }
            catch (NvrtcException e)
            {
                entries.Add(new KernelReportEntry(file.Name, arch, null, false, null, null, null, null, null, null, false,
                    e.Log.Length > 0 ? e.Log : e.Message));
                continue;
            }
            var kernels = compiled.Kernels();
            if (kernels.Count == 0)
                entries.Add(new KernelReportEntry(file.Name, arch, null, true, null, null, null, null, null, null, compiled.FromCache, compiled.Log));
            foreach (var k in kernels)
                entries.Add(new KernelReportEntry(file.Name, arch, k.Name, true, k.Registers, k.StaticSharedBytes, k.FrameBytes,
                    k.SpillStoreBytes, k.SpillLoadBytes, k.MaxThreadsPerBlock, compiled.FromCache, compiled.Log));
        }
        return entries;
    }

    /// <summary>
    /// The architecture to report for when the user names none: GPU 0's (e.g. "sm_90") when a GPU is usable,
    /// else <paramref name="fallback"/> (the reference GPU machine has an H100/H200).
    /// </summary>
    public static string DetectArch(string fallback = "sm_90")
    {
        try
        {
            using var ctx = CudaContext.Open();
            return ctx.Arch;
        }
        catch (CudaException) { return fallback; }
        catch (TransPeft.Cuda.Native.CudaLibraryNotFoundException) { return fallback; }
    }

    /// <summary>The entries as a JSON array (written by hand, so NativeAOT needs no serializer metadata).</summary>
    public static string ToJson(IReadOnlyList<KernelReportEntry> entries, bool indented = true)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartArray();
            foreach (var e in entries)
            {
                w.WriteStartObject();
                w.WriteString("file", e.File);
                w.WriteString("arch", e.Arch);
                if (e.Kernel is null) w.WriteNull("kernel"); else w.WriteString("kernel", e.Kernel);
                w.WriteString("status", e.Status);
                Number(w, "registers", e.Registers);
                Number(w, "staticSharedBytes", e.StaticSharedBytes);
                Number(w, "frameBytes", e.FrameBytes);
                Number(w, "spillStoreBytes", e.SpillStoreBytes);
                Number(w, "spillLoadBytes", e.SpillLoadBytes);
                Number(w, "maxThreadsPerBlock", e.MaxThreadsPerBlock);
                w.WriteBoolean("fromCache", e.FromCache);
                w.WriteString("log", e.Log);
                w.WriteEndObject();
            }
            w.WriteEndArray();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private static void Number(Utf8JsonWriter w, string name, int? value)
    {
        if (value is { } v) w.WriteNumber(name, v); else w.WriteNull(name);
    }
}
