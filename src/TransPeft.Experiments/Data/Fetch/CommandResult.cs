namespace TransPeft.Experiments.Data.Fetch;

/// <summary>What an external command did: its exit code and the text it printed.</summary>
public sealed record CommandResult(int ExitCode, string StandardOutput, string StandardError)
{
    /// <summary>The last few lines of stderr (or stdout when stderr is empty), for error messages.</summary>
    public string Tail(int lines = 6)
    {
        var text = string.IsNullOrWhiteSpace(StandardError) ? StandardOutput : StandardError;
        var all = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join(" | ", all.Skip(Math.Max(0, all.Length - lines)));
    }
}
