namespace TransPeft.Experiments.Data.Fetch;

/// <summary>
/// Runs an external program (npm, apt-get, dpkg-deb). The fetcher goes through this seam so tests can
/// replace the registries with a fake and prove that a cached source needs no command at all.
/// </summary>
public interface ICommandRunner
{
    /// <summary>Runs <paramref name="program"/> with <paramref name="arguments"/> in <paramref name="workingDirectory"/>.</summary>
    /// <exception cref="CommandNotFoundException">The program is not installed / not on PATH.</exception>
    CommandResult Run(string program, IReadOnlyList<string> arguments, string workingDirectory, TimeSpan timeout, CancellationToken cancellationToken);
}

/// <summary>The program to run does not exist on this machine.</summary>
public sealed class CommandNotFoundException(string program, Exception? inner = null)
    : Exception($"'{program}' was not found on PATH", inner)
{
    public string Program { get; } = program;
}
