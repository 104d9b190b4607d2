using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Spectre.Console;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;

namespace TransPeft.Cli.Commands;

/// <summary>
/// `tpeft score`: mean cross-entropy and perplexity of a model (optionally with an adapter) on a data file, read by
/// the training data loader so the numbers are the ones training reports as validation loss. Each record is one
/// sequence (no packing), truncated to max_position_embeddings; the loss is the mean over every counted target
/// token of every record (not a mean of per-record means).
/// </summary>
internal static class ScoreCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var adapter = CommonOptions.Adapter();
        var tokenizer = CommonOptions.Tokenizer();
        var data = new Option<string>("--data", "-d")
        {
            Description = "Records to score (JSONL): {\"text\"} (every token counted, EOS included), {\"prompt\",\"completion\"} (completion and EOS counted), "
                + "Alpaca records, or pre-tokenized {\"input_ids\",\"labels\"?} in the Hugging Face convention (labels -100 not counted; the shift is done here). A .txt file is one document",
            Required = true, HelpName = "FILE",
        };
        var format = new Option<string>("--format") { Description = "Data format: auto (from the extension and first record), text, text-records, prompt-completion, alpaca, tokenized", DefaultValueFactory = _ => "auto" };
        var batch = new Option<int>("--batch-size") { Description = "Records per forward pass (records are sorted by length, padding is not counted)", DefaultValueFactory = _ => 8 };
        var device = CommonOptions.Device();
        var json = CommonOptions.Json();
        var cmd = new Command("score",
            "Mean loss (cross-entropy per counted token, nats) and perplexity of a model on a data file.\n"
            + "Example: tpeft score --model base --adapter run/final --data test.jsonl")
            { model, adapter, tokenizer, data, format, batch, device, json };
        cmd.SetAction(p => CliErrors.Run(() =>
        {
            string modelDir = p.GetValue(model)!, path = p.GetValue(data)!;
            int batchSize = p.GetValue(batch);
            if (batchSize <= 0) throw new ArgumentException($"--batch-size: expected a positive number of records, got {batchSize}");
            var fmt = ParseFormat(p.GetValue(format)!);
            if (!File.Exists(path)) throw new FileNotFoundException($"{path}: data file not found", path);
            var detected = fmt == DatasetFormat.Auto ? DatasetFormatNames.Detect(path) : fmt;

            using var session = ModelInputs.OpenSession(modelDir, p.GetValue(tokenizer), required: detected != DatasetFormat.Tokenized, "text records need",
                DeviceChoice.ForCommand(p, device), p.GetValue(adapter));
            var score = session.ScoreFile(path, detected, batchSize, ModelInputs.AdapterOf(p.GetValue(adapter)));
            var report = score.Report;
            long counted = score.Counted;
            double mean = score.MeanLoss;
            int seqLen = session.MaxSequenceLength;
            if (report.Truncated > 0)
                Console.Error.WriteLine($"warning: {report.Truncated} record(s) longer than max_position_embeddings = {seqLen} were truncated to it");
            if (report.Skipped > 0)
                Console.Error.WriteLine($"warning: {report.Skipped} record(s) have no counted token and were left out");

            if (p.GetValue(json))
            {
                JsonOutput.Write(new JsonObject
                {
                    ["data"] = Path.GetFullPath(path), ["format"] = report.Format.Name(), ["records"] = score.Records, ["skipped"] = report.Skipped,
                    ["truncated"] = report.Truncated, ["tokens"] = counted, ["mean_loss"] = mean, ["perplexity"] = Math.Exp(mean),
                    ["model"] = Path.GetFullPath(modelDir), ["adapter"] = p.GetValue(adapter) is { } a ? Path.GetFullPath(a) : null, ["device"] = session.DeviceDescription,
                });
                return 0;
            }
            var table = new Table().AddColumns("data", "format", "records", "counted tokens", "mean loss", "perplexity");
            table.AddRow(Markup.Escape(path), report.Format.Name(), $"{score.Records:N0}", $"{counted:N0}",
                $"[bold]{mean.ToString("0.0000", CultureInfo.InvariantCulture)}[/]", Math.Exp(mean).ToString("0.00", CultureInfo.InvariantCulture));
            AnsiConsole.Write(table);
            return 0;
        }));
        return cmd;
    }

    internal static DatasetFormat ParseFormat(string s) =>
        DatasetFormatNames.All.FirstOrDefault(x => string.Equals(x.Name, s.Trim(), StringComparison.OrdinalIgnoreCase)) is { Name: not null } f ? f.Format
        : throw new ArgumentException($"--format: expected one of {string.Join(", ", DatasetFormatNames.All.Select(x => x.Name))}, got '{s}'");
}
