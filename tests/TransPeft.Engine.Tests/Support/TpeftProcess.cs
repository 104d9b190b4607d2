using System.Diagnostics;

namespace TransPeft.Engine.Tests.Support;

/// <summary>Runs the real `tpeft` executable (tpeft.dll, copied next to the tests) as a child process.</summary>
internal static class TpeftProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    public static Result Run(params string[] args) => RunIn(null, args);

    public static Result RunIn(IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "tpeft.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["TPEFT_THREADS"] = "1";
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(300_000)) { p.Kill(true); throw new TimeoutException($"tpeft {string.Join(' ', args)} did not finish in 300 s"); }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static string TempDir()
    {
        var d = Path.Combine(Path.GetTempPath(), "tpeft-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }
}
