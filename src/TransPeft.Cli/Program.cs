using System.CommandLine;
using Spectre.Console;
using TransPeft.Cli.Commands;

namespace TransPeft.Cli;

/// <summary>`tpeft`: train, transfer, evaluate and analyse LoRA adapters over evolving base models.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var root = new RootCommand("tpeft: a C# engine for LoRA adapters that survive base-model updates (Trans-PEFT).");
        foreach (var c in CommandCatalog.All()) root.Subcommands.Add(c);
        try
        {
            return root.Parse(args).Invoke();
        }
        catch (Exception e) when (CliErrors.IsUserError(e))
        {
            CliErrors.Report(e);
            return 1;
        }
    }
}
