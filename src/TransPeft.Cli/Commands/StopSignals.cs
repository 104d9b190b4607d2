using System.Runtime.InteropServices;

namespace TransPeft.Cli.Commands;

/// <summary>
/// SIGINT (Ctrl-C) and SIGTERM (kill, docker stop, Slurm's time limit) ask a long command to stop gracefully: the
/// first one cancels <paramref name="cts"/> (training finishes its step and writes a checkpoint, then exits non-zero);
/// a second one is left to the runtime's default, which ends the process at once.
/// </summary>
internal sealed class StopSignals(CancellationTokenSource cts, string announce) : IDisposable
{
    private readonly PosixSignalRegistration[] _registrations =
    [
        PosixSignalRegistration.Create(PosixSignal.SIGINT, ctx => OnSignal(cts, announce, ctx)),
        PosixSignalRegistration.Create(PosixSignal.SIGTERM, ctx => OnSignal(cts, announce, ctx)),
    ];

    private static void OnSignal(CancellationTokenSource cts, string announce, PosixSignalContext ctx)
    {
        if (cts.IsCancellationRequested) return; // the second signal: default handling ends the process
        ctx.Cancel = true;
        cts.Cancel();
        Console.Error.WriteLine($"{ctx.Signal}: {announce}");
    }

    public void Dispose() { foreach (var r in _registrations) r.Dispose(); }
}
