using System.CommandLine;
using Spectre.Console;
using TransPeft.Cuda.Compile;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft kernels`: compile every CUDA kernel with NVRTC and show registers, shared memory and spills.</summary>
internal static class KernelsCommand
{
    public static Command Create()
    {
        var arch = new Option<string?>("--arch") { Description = "Target architecture, e.g. sm_80 or sm_90 (default: the GPU's, else sm_90)" };
        var json = CommonOptions.Json();
        var cmd = new Command("kernels", "Compile every kernel with NVRTC and list registers, shared memory, spills and status (the starting point for Nsight work)") { arch, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            string target = p.GetValue(arch) ?? KernelReport.DetectArch();
            var entries = KernelReport.Build(KernelSourceSet.Default(), target, KernelCompiler.WithDefaultCache());
            if (p.GetValue(json))
                Console.Out.WriteLine(KernelReport.ToJson(entries));
            else
            {
                var table = new Table().AddColumns("file", "kernel", "arch", "registers", "static smem B", "spill B", "status");
                foreach (var e in entries)
                    table.AddRow(Markup.Escape(e.File), Markup.Escape(e.Kernel ?? "-"), e.Arch, $"{e.Registers}", $"{e.StaticSharedBytes}",
                        e.SpillBytes is { } s ? $"{s}" : "?", e.Status == "ok" ? "[green]ok[/]" : $"[red]{Markup.Escape(e.Status)}[/]");
                AnsiConsole.Write(table);
            }
            return entries.All(e => e.Compiled) ? 0 : 1;
        }));
        return cmd;
    }
}
