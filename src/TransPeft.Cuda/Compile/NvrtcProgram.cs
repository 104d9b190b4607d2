using System.Runtime.InteropServices;
using System.Text;
using TransPeft.Cuda.Native;

namespace TransPeft.Cuda.Compile;

/// <summary>One NVRTC program: create, compile, read the results, destroy. Strings go to NVRTC as UTF-8 copies in
/// unmanaged memory that live until the program is disposed.</summary>
internal sealed unsafe class NvrtcProgram : IDisposable
{
    private readonly List<nint> _strings = [];
    private readonly string _sourceName;
    private nint _program;

    public NvrtcProgram(string source, string sourceName, IReadOnlyList<KernelHeader> headers)
    {
        _sourceName = sourceName;
        var src = Utf8(source);
        var name = Utf8(sourceName);
        var headerContents = stackalloc byte*[Math.Max(1, headers.Count)];
        var headerNames = stackalloc byte*[Math.Max(1, headers.Count)];
        for (var i = 0; i < headers.Count; i++)
        {
            headerContents[i] = Utf8(headers[i].Text);
            headerNames[i] = Utf8(headers[i].IncludeName);
        }
        nint p;
        Throw(Nvrtc.nvrtcCreateProgram(&p, src, name, headers.Count, headers.Count > 0 ? headerContents : null, headers.Count > 0 ? headerNames : null),
            nameof(Nvrtc.nvrtcCreateProgram));
        _program = p;
    }

    /// <summary>Registers a C++ name expression (e.g. "softmax&lt;256&gt;") whose mangled name is wanted.</summary>
    public void AddNameExpression(string expression) =>
        Throw(Nvrtc.nvrtcAddNameExpression(_program, Utf8(expression)), nameof(Nvrtc.nvrtcAddNameExpression));

    /// <summary>Compiles; returns NVRTC's status (0 = success) and the log.</summary>
    public (int Status, string Log) Compile(IReadOnlyList<string> options)
    {
        var opts = stackalloc byte*[Math.Max(1, options.Count)];
        for (var i = 0; i < options.Count; i++) opts[i] = Utf8(options[i]);
        var status = Nvrtc.nvrtcCompileProgram(_program, options.Count, opts);
        return (status, Log());
    }

    public string Log()
    {
        nuint size;
        Throw(Nvrtc.nvrtcGetProgramLogSize(_program, &size), nameof(Nvrtc.nvrtcGetProgramLogSize));
        if (size <= 1) return "";
        var buf = new byte[(int)size];
        fixed (byte* b = buf) Throw(Nvrtc.nvrtcGetProgramLog(_program, b), nameof(Nvrtc.nvrtcGetProgramLog));
        return Encoding.UTF8.GetString(buf, 0, Array.IndexOf(buf, (byte)0) is var z and >= 0 ? z : buf.Length);
    }

    public byte[] Cubin()
    {
        nuint size;
        Throw(Nvrtc.nvrtcGetCUBINSize(_program, &size), nameof(Nvrtc.nvrtcGetCUBINSize));
        var buf = new byte[(int)size];
        fixed (byte* b = buf) Throw(Nvrtc.nvrtcGetCUBIN(_program, b), nameof(Nvrtc.nvrtcGetCUBIN));
        return buf;
    }

    public string Ptx()
    {
        nuint size;
        Throw(Nvrtc.nvrtcGetPTXSize(_program, &size), nameof(Nvrtc.nvrtcGetPTXSize));
        var buf = new byte[(int)size];
        fixed (byte* b = buf) Throw(Nvrtc.nvrtcGetPTX(_program, b), nameof(Nvrtc.nvrtcGetPTX));
        return Encoding.UTF8.GetString(buf).TrimEnd('\0');
    }

    public string LoweredName(string expression)
    {
        byte* lowered = null;
        Throw(Nvrtc.nvrtcGetLoweredName(_program, Utf8(expression), &lowered), nameof(Nvrtc.nvrtcGetLoweredName));
        return Marshal.PtrToStringUTF8((nint)lowered) ?? "";
    }

    private byte* Utf8(string s)
    {
        var p = Marshal.StringToCoTaskMemUTF8(s);
        _strings.Add(p);
        return (byte*)p;
    }

    private void Throw(int status, string call)
    {
        if (status != 0) throw new NvrtcException(call, Nvrtc.ErrorName(status), status, _sourceName, "");
    }

    public void Dispose()
    {
        if (_program != 0)
        {
            var p = _program;
            _program = 0;
            Nvrtc.nvrtcDestroyProgram(&p);
        }
        foreach (var s in _strings) Marshal.FreeCoTaskMem(s);
        _strings.Clear();
    }
}
