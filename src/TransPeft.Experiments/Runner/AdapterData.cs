using System.Text.Json.Nodes;
using Microsoft.ML.Tokenizers;
using TransPeft.Experiments.Data.Tasks;
using TransPeft.Engine.IO;
using TransPeft.Engine.Training;

namespace TransPeft.Experiments;

/// <summary>
/// A task's training records as the adapters see them: pre-tokenized <c>{"input_ids", "labels"}</c> lines with the
/// prompt encoded on its own, then the completion encoded on its own (exactly the ids evaluation scores), the loss
/// on the completion tokens only, and an EOS target after them only when asked for
/// (<see cref="AdapterTrainingPlan.TargetEos"/>).
/// </summary>
internal static class AdapterData
{
    /// <summary>Writes the file (deterministically: a rerun writes the same bytes, so a resumed run sees the same data).</summary>
    public static void Write(string taskTrainPath, Tokenizer tokenizer, int eosId, bool targetEos, string outPath)
    {
        var lines = new List<string>();
        foreach (var r in TaskFiles.ReadJsonl(taskTrainPath))
        {
            var prompt = tokenizer.EncodeToIds(r.Prompt);
            var completion = tokenizer.EncodeToIds(r.Completion);
            if (completion.Count == 0) throw new InvalidDataException($"{taskTrainPath}: record {r.Id}: field 'completion': text that encodes to at least one token");
            var ids = new JsonArray();
            var labels = new JsonArray();
            foreach (var id in prompt) { ids.Add(id); labels.Add(TokenBatch.IgnoreIndex); }
            foreach (var id in completion) { ids.Add(id); labels.Add(id); }
            if (targetEos) { ids.Add(eosId); labels.Add(eosId); }
            lines.Add(new JsonObject { ["input_ids"] = ids, ["labels"] = labels }.ToJsonString());
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        AtomicFile.WriteAllText(outPath, string.Join("\n", lines) + "\n");
    }
}
