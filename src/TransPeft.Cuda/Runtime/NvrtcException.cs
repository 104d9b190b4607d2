namespace TransPeft.Cuda;

/// <summary>An NVRTC call failed; for a compilation error <see cref="Log"/> holds the compiler's log, which is
/// also part of the message.</summary>
public sealed class NvrtcException : CudaException
{
    public NvrtcException(string call, string errorName, int code, string? sourceName, string log)
        : base(call, errorName, code, Detail(sourceName, log))
    {
        SourceName = sourceName;
        Log = log;
    }

    public string? SourceName { get; }
    public string Log { get; }

    private static string? Detail(string? sourceName, string log)
    {
        if (sourceName is null && log.Length == 0) return null;
        var head = sourceName is null ? "" : $"compiling {sourceName}";
        return log.Length == 0 ? head : $"{head}{(head.Length > 0 ? "\n" : "")}{log.TrimEnd()}";
    }
}
