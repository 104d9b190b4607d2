namespace TransPeft.Engine.Tests.Cuda.Backend;

/// <summary>
/// When TPEFT_PARITY_REPORT names a file (tools/gpu-check.sh sets it), the GPU training-step parity tests append
/// one line each, "PASS name: ..." or "FAIL name: ...", which gpu-check.sh summarises in its final table.
/// </summary>
internal static class ParityReport
{
    public const string Variable = "TPEFT_PARITY_REPORT";
    private static readonly Lock s_lock = new();

    /// <summary>Runs <paramref name="check"/> (which returns a one-line summary) and records its outcome.</summary>
    public static void Run(bool record, string name, Func<string> check)
    {
        string summary;
        try
        {
            summary = check();
        }
        catch (Exception e) when (e is not SkipException)
        {
            if (record) Write($"FAIL {name}: {e.Message.Split('\n')[0]}");
            throw;
        }
        if (record) Write($"PASS {name}: {summary}");
    }

    private static void Write(string line)
    {
        var path = Environment.GetEnvironmentVariable(Variable);
        if (string.IsNullOrEmpty(path)) return;
        lock (s_lock) File.AppendAllText(path, line + Environment.NewLine);
    }
}
