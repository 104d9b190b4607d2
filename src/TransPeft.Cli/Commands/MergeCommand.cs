using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft merge`: fold a PEFT adapter into its base and write a plain HF model.</summary>
internal static class MergeCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var adapter = new Option<string>("--adapter", "-a") { Description = "PEFT adapter folder", Required = true };
        var outOpt = new Option<string>("--out", "-o") { Description = "Folder for the merged model", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Storage dtype: f32 | bf16 | f16", DefaultValueFactory = _ => "f32" };
        var json = CommonOptions.Json();
        var overwrite = CommonOptions.Overwrite();
        var cmd = new Command("merge", "Merge a LoRA adapter into its base model (W += scaling·B·A) and save the result") { model, adapter, outOpt, dtype, json, overwrite };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            OutputFolder.Claim(p.GetValue(outOpt)!, p.GetValue(overwrite), "--out", p.GetValue(model), p.GetValue(adapter));
            var baseModel = TransformerModel.Load(p.GetValue(model)!, CommonOptions.MaxMemoryOf(p));
            var lora = LoraAdapter.Load(p.GetValue(adapter)!, baseModel.Config);
            var merged = LoraMerge.Merge(baseModel, lora);
            merged.Save(p.GetValue(outOpt)!, InitCommand.ParseDType(p.GetValue(dtype)!));
            if (p.GetValue(json))
                JsonOutput.Write(new JsonObject { ["out"] = Path.GetFullPath(p.GetValue(outOpt)!), ["merged_modules"] = lora.ModuleCount });
            else
                AnsiConsole.MarkupLineInterpolated($"Merged {lora.ModuleCount} LoRA modules into [green]{p.GetValue(outOpt)}[/]");
            return 0;
        }));
        return cmd;
    }
}
