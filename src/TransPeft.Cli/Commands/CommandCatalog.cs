using System.CommandLine;

namespace TransPeft.Cli.Commands;

/// <summary>Every `tpeft` subcommand, in the order `--help` lists them.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All() =>
    [
        InitCommand.Create(),
        InspectCommand.Create(),
        TrainCommand.Create(),
        GenerateCommand.Create(),
        ScoreCommand.Create(),
        EvalCommand.Create(),
        TransferCommand.Create(),
        MergeCommand.Create(),
        AnalyzeUpdateCommand.Create(),
        DataCommand.Create(),
        BenchCommand.Create(),
        ServeCommand.Create(),
        KernelsCommand.Create(),
        ProfileCommand.Create(),
        ExperimentCommand.Create(),
        ImportCommand.Create(),
        EmbedCommand.Create(),
    ];
}
