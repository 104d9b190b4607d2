using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.IO;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft transfer`: move a LoRA adapter trained on one base onto an updated base without retraining
/// (<see cref="AdapterTransfer"/>). Every incompatibility is listed; an incompatible pair exits with 1.
/// </summary>
internal static class TransferCommand
{
    public static Command Create()
    {
        var adapter = new Option<string>("--adapter", "-a") { Description = "The PEFT adapter folder trained on the old base", Required = true, HelpName = "DIR" };
        var to = new Option<string>("--to") { Description = "The new (updated) base model folder", Required = true, HelpName = "NEWBASE" };
        var outOpt = new Option<string?>("--out", "-o") { Description = "Folder for the adapter retargeted at the new base (required unless --check-only)", HelpName = "DIR" };
        var oldBase = new Option<string?>("--old-base") { Description = "The old base folder, to compare architectures field by field (default: the adapter's base_model_name_or_path when it is a local folder)", HelpName = "DIR" };
        var merge = new Option<bool>("--merge") { Description = "Also write the new base with the adapter merged in (OUT/merged, a plain Hugging Face model)" };
        var dtype = new Option<string>("--dtype") { Description = "Storage dtype of the merged model: f32 | bf16 | f16", DefaultValueFactory = _ => "f32" };
        var checkOnly = new Option<bool>("--check-only") { Description = "Only report whether the adapter fits the new base; write nothing" };
        var json = CommonOptions.Json();
        var overwrite = CommonOptions.Overwrite();
        var cmd = new Command("transfer",
            "Check an adapter against an updated base and retarget it there (tensors copied byte for byte; Trans-PEFT settings kept). "
            + "Lists every incompatibility (architecture fields, module shapes, missing modules) and exits with 1 when there is one.\n"
            + "Example: tpeft transfer --adapter run/final --to base-v2 --out run/final-on-v2 --merge")
            { adapter, to, outOpt, oldBase, merge, dtype, checkOnly, json, overwrite };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            string a = p.GetValue(adapter)!, newBase = p.GetValue(to)!;
            string? outDir = p.GetValue(outOpt);
            bool check = p.GetValue(checkOnly), asJson = p.GetValue(json);
            if (!check && outDir is null) throw new ArgumentException("--out: give a folder for the transferred adapter (or use --check-only)");
            if (check && (outDir is not null || p.GetValue(merge))) throw new ArgumentException("--check-only writes nothing: drop --out and --merge");
            if (!Directory.Exists(a)) throw new DirectoryNotFoundException($"--adapter {a}: no such folder");
            if (!Directory.Exists(newBase)) throw new DirectoryNotFoundException($"--to {newBase}: no such folder");
            if (outDir is not null) OutputFolder.Claim(outDir, p.GetValue(overwrite), "--out", a, newBase, p.GetValue(oldBase));

            var report = AdapterTransfer.Check(a, newBase, p.GetValue(oldBase));
            TransferResult? result = null;
            if (report.IsCompatible && !check)
            {
                result = AdapterTransfer.Transfer(a, newBase, outDir!, p.GetValue(merge), new TransferOptions
                {
                    OldBaseDir = p.GetValue(oldBase), MergedDType = InitCommand.ParseDType(p.GetValue(dtype)!),
                });
                report = result.Report;
            }

            if (asJson) JsonOutput.Write(ToJson(report, result));
            else Print(report, result);
            if (!report.IsCompatible)
            {
                Console.Error.WriteLine($"error: the adapter does not fit {newBase}: {report.Errors.Count()} incompatibilit{(report.Errors.Count() == 1 ? "y" : "ies")}"
                    + (asJson ? " (listed in the JSON)" : " (listed above)"));
                return 1;
            }
            return 0;
        }));
        return cmd;
    }

    private static JsonObject ToJson(TransferReport r, TransferResult? result) => new()
    {
        ["compatible"] = r.IsCompatible,
        ["adapter"] = Path.GetFullPath(r.AdapterDir), ["new_base"] = Path.GetFullPath(r.NewBaseDir), ["old_base"] = r.OldBase,
        ["old_base_config"] = r.OldBaseConfigPath, ["modules"] = r.AdapterModules, ["rank"] = r.Rank,
        ["trans_peft"] = r.TransPeft is { } tp ? new JsonObject { ["p_mask"] = tp.PMask, ["p_drop"] = tp.PDrop, ["seed"] = tp.Seed } : null,
        ["errors"] = r.Errors.Count(), ["warnings"] = r.Warnings.Count(),
        ["issues"] = new JsonArray(r.Issues.Select(i => (JsonNode)new JsonObject
        {
            ["severity"] = i.IsError ? "error" : "warning", ["subject"] = i.Subject, ["problem"] = i.Problem,
            ["adapter_side"] = i.AdapterSide, ["base_side"] = i.BaseSide,
        }).ToArray()),
        ["out"] = result is null ? null : Path.GetFullPath(result.AdapterDir),
        ["merged"] = result?.MergedModelDir is { } m ? Path.GetFullPath(m) : null,
    };

    private static void Print(TransferReport r, TransferResult? result)
    {
        string kind = r.TransPeft is { } tp ? $"Trans-PEFT (p_mask {tp.PMask}, p_drop {tp.PDrop})" : "plain LoRA";
        AnsiConsole.MarkupLineInterpolated($"adapter [bold]{r.AdapterDir}[/]: {r.AdapterModules} modules{(r.Rank is int k ? $", r={k}" : "")}, {kind}, trained on {r.OldBase ?? "an unrecorded base"}");
        if (r.Issues.Count > 0)
        {
            var t = new Table().AddColumns("", "subject", "problem");
            foreach (var i in r.Issues.OrderBy(i => i.Severity))
                t.AddRow(i.IsError ? "[red]error[/]" : "[yellow]warning[/]", Markup.Escape(i.Subject), Markup.Escape(i.Problem));
            AnsiConsole.Write(t);
        }
        if (!r.IsCompatible) { AnsiConsole.MarkupLineInterpolated($"[red]INCOMPATIBLE[/] with {r.NewBaseDir}"); return; }
        AnsiConsole.MarkupLineInterpolated($"[green]compatible[/] with {r.NewBaseDir}");
        if (result is not null)
        {
            AnsiConsole.MarkupLineInterpolated($"wrote the transferred adapter to [green]{result.AdapterDir}[/]");
            if (result.MergedModelDir is { } m) AnsiConsole.MarkupLineInterpolated($"wrote the merged model to [green]{m}[/]");
        }
    }
}
