using Spectre.Console;

namespace TransPeft.Cli;

/// <summary>Errors caused by the user's input: printed as one clear line, exit code 1, no stack trace.</summary>
internal static class CliErrors
{
    public static bool IsUserError(Exception e) => e is FormatException or ArgumentException or FileNotFoundException
        or DirectoryNotFoundException or InvalidOperationException or IOException or UnauthorizedAccessException
        or System.Text.Json.JsonException or OperationCanceledException
        || e.GetType().Name.EndsWith("Exception", StringComparison.Ordinal) && e.GetType().Namespace?.StartsWith("TransPeft", StringComparison.Ordinal) == true;

    public static void Report(Exception e)
    {
        var inner = e is AggregateException { InnerExceptions.Count: 1 } a ? a.InnerExceptions[0] : e;
        AnsiConsole.Console.Profile.Out.Writer.Flush();
        // One line, whatever the message: a multi-line message (a nested parser's) would read as several errors.
        Console.Error.WriteLine($"error: {OneLine(inner.Message)}");
    }

    internal static string OneLine(string message) => TransPeft.Engine.EngineErrors.OneLine(message);

    /// <summary>Runs a command body, turning user errors into a message and exit code 1.</summary>
    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (IsUserError(e) || e is AggregateException { InnerExceptions.Count: 1 } ag && IsUserError(ag.InnerExceptions[0]))
        {
            Report(e);
            return 1;
        }
    }
}
