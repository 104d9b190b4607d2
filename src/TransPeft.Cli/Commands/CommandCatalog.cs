using System.CommandLine;

namespace TransPeft.Cli.Commands;

/// <summary>Every `tpeft` subcommand, in the order `--help` lists them.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All() =>
    [
        InitCommand.Create(),
        InspectCommand.Create(),
        MergeCommand.Create(),
        BenchCommand.Create(),
        ExperimentCommand.Create(),
    ];
}
