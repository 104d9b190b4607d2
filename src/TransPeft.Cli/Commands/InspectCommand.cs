using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Cli.Commands;

/// <summary>`tpeft inspect DIR`: the config and every tensor (name, dtype, shape, bytes) of a model or adapter folder.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var dir = new Argument<string>("dir") { Description = "A model folder (config.json + safetensors) or a PEFT adapter folder" };
        var json = CommonOptions.Json();
        var cmd = new Command("inspect", "Show a model's or adapter's config and tensor table") { dir, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            string d = p.GetValue(dir)!;
            if (!Directory.Exists(d)) throw new DirectoryNotFoundException($"{d}: no such folder");
            bool isAdapter = File.Exists(Path.Combine(d, "adapter_config.json"));
            JsonNode config;
            var tensors = new List<TensorInfo>();
            var files = new List<string>();
            if (isAdapter)
            {
                config = LoraAdapter.ReadConfigJson(Path.Combine(d, "adapter_config.json"));
                using var r = SafetensorsReader.Open(Path.Combine(d, "adapter_model.safetensors"));
                tensors.AddRange(r.Names.Select(r.GetInfo)); files.Add(r.Path);
            }
            else
            {
                var cfg = ModelConfig.Load(Path.Combine(d, "config.json"));
                config = cfg.ToJson();
                config["parameters"] = cfg.ParameterCount();
                using var ck = SafetensorsCheckpoint.Open(d);
                foreach (var shard in ck.Shards) { files.Add(shard.Path); tensors.AddRange(shard.Names.Select(shard.GetInfo)); }
            }
            if (p.GetValue(json))
            {
                JsonOutput.Write(new JsonObject
                {
                    ["kind"] = isAdapter ? "adapter" : "model",
                    ["config"] = config,
                    ["files"] = new JsonArray(files.Select(f => (JsonNode)f).ToArray()),
                    ["tensors"] = new JsonArray(tensors.Select(t => (JsonNode)new JsonObject
                    {
                        ["name"] = t.Name, ["dtype"] = t.DType.ToString(),
                        ["shape"] = new JsonArray(t.Shape.Select(x => (JsonNode)x).ToArray()), ["bytes"] = t.ByteLength,
                    }).ToArray()),
                    ["total_bytes"] = tensors.Sum(t => t.ByteLength),
                });
                return 0;
            }
            AnsiConsole.Write(new Panel(new Text(config.ToJsonString(JsonOutput.Options))).Header(isAdapter ? "adapter_config.json" : "config.json"));
            var table = new Table().AddColumns("name", "dtype", "shape", "bytes");
            foreach (var t in tensors) table.AddRow(Markup.Escape(t.Name), t.DType.ToString(), Markup.Escape($"[{string.Join(", ", t.Shape)}]"), $"{t.ByteLength:N0}");
            table.Caption($"{tensors.Count} tensors, {tensors.Sum(t => t.ByteLength):N0} bytes in {files.Count} file(s)");
            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }
}
