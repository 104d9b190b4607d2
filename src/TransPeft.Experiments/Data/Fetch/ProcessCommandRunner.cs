using System.ComponentModel;
using System.Diagnostics;

namespace TransPeft.Experiments.Data.Fetch;

/// <summary>Runs commands as child processes, capturing stdout and stderr; kills the process tree on timeout or cancel.</summary>
public sealed class ProcessCommandRunner : ICommandRunner
{
    public static ProcessCommandRunner Instance { get; } = new();

    public CommandResult Run(string program, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        // Registry clients must not stop to ask questions or page their output.
        psi.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        psi.Environment["NO_UPDATE_NOTIFIER"] = "1";
        psi.Environment["npm_config_update_notifier"] = "false";
        psi.Environment["npm_config_fund"] = "false";

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new CommandNotFoundException(program);
        }
        catch (Win32Exception e)
        {
            throw new CommandNotFoundException(program, e);
        }
        using (process)
        {
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            try
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                cts.CancelAfter(timeout);
                process.WaitForExitAsync(cts.Token).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                cancellationToken.ThrowIfCancellationRequested();
                throw new TimeoutException($"'{program} {string.Join(' ', arguments)}' did not finish within {timeout.TotalSeconds:0} s");
            }
            return new CommandResult(process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
        }
    }
}
