using TransPeft.Engine.Evaluation;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine;

/// <summary>
/// The engine's named error types: the exceptions it throws on purpose, each with a one-line message naming the
/// file (or option) and what was expected. Anything else escaping a parser of untrusted input is a bug; the fuzz
/// tests fail on it, and hosts can tell "bad input" from "engine defect" with <see cref="IsNamed"/>.
/// </summary>
public static class EngineErrors
{
    public static readonly IReadOnlyList<Type> Named =
    [
        typeof(SafetensorsFormatException), typeof(ModelConfigException), typeof(TokenizerFormatException),
        typeof(DatasetFormatException), typeof(EvalDataException), typeof(TrainingConfigException),
        typeof(InputFileException), typeof(OutputFolderException), typeof(NonFiniteValueException),
        typeof(MemoryBudgetException), typeof(AdapterTransferException), typeof(TrainingDivergedException),
    ];

    /// <summary>
    /// A message as one line. Messages quote user input (a regex, a JSON fragment, a field value) that may hold
    /// newlines; the rule "one line per error" holds whatever the input was.
    /// </summary>
    public static string OneLine(string message) =>
        message.AsSpan().IndexOfAny('\r', '\n') < 0 ? message
            : string.Join(" ", message.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>True for an exception of one of the <see cref="Named"/> types.</summary>
    public static bool IsNamed(Exception e) => Named.Contains(e.GetType());
}
