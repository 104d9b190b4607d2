using System.CommandLine;
using TransPeft.Engine.Sessions;

namespace TransPeft.Cli.Commands;

/// <summary>
/// Where a command computes, from <c>--device auto|cpu|cuda[:N]</c>, turned into the <see cref="SessionOptions"/>
/// of the command's session (the engine starts the device). CPU threads come from TPEFT_THREADS: the engine reads
/// no environment variable, the CLI does and passes the count on. <c>auto</c> says on stderr why it fell back to
/// the CPU; an explicit <c>cuda</c> that cannot start fails with the reason instead of computing elsewhere.
/// </summary>
internal static class DeviceChoice
{
    /// <summary>TPEFT_THREADS, else 0 (every core).</summary>
    public static int Threads { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("TPEFT_THREADS"), out int n) && n > 0 ? n : 0;

    /// <summary>
    /// The session options of a command. Throws an <see cref="ArgumentException"/> naming the flag for bad values.
    /// Commands that compute on the CPU only (<paramref name="cpuOnly"/> says why: the CPU benchmarks, the activation
    /// observer of analyze-update) run on the CPU under auto and refuse an explicit cuda.
    /// </summary>
    public static SessionOptions ForCommand(ParseResult p, Option<string> device, string? cpuOnly = null)
    {
        string requested = (p.GetValue(device) ?? "auto").Trim().ToLowerInvariant();
        DeviceSpec spec;
        try { spec = DeviceSpec.Parse(requested); }
        catch (ArgumentException) { throw new ArgumentException($"--device: expected auto, cpu, cuda or cuda:N, got '{p.GetValue(device)}'"); }
        if (cpuOnly is not null && spec.Kind != DeviceKind.Cpu)
        {
            if (spec.Kind == DeviceKind.Auto)
            {
                Console.Error.WriteLine($"device: cpu ({cpuOnly})");
                return new SessionOptions { Device = "cpu", Threads = Threads };
            }
            throw new InvalidOperationException($"--device {requested}: {cpuOnly}; run with --device cpu (or auto)");
        }
        return new SessionOptions { Device = requested, Threads = Threads };
    }

    /// <summary>Opens a session, turning an unavailable device into the flag's error, and reports where it runs on stderr
    /// (stdout stays clean for --json and pipes).</summary>
    public static InferenceSession Open(Func<InferenceSession> open, SessionOptions options)
    {
        InferenceSession session;
        try { session = open(); }
        catch (DeviceUnavailableException e) { throw new InvalidOperationException($"--device {options.Device}: {e.Reason}; run with --device cpu (or auto)", e); }
        if (session.DeviceFallbackReason is { } why) Console.Error.WriteLine($"device: cpu ({why})");
        else if (session.CudaDescription is { } gpu) Console.Error.WriteLine($"device: {gpu}");
        return session;
    }
}
