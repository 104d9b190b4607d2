using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.TransPeft;

/// <summary>
/// Moving a LoRA adapter trained on one base onto an updated base of the same architecture (the
/// Trans-PEFT protocol's "transfer": nothing is retrained). <see cref="Check"/> lists every reason the
/// adapter may not fit; <see cref="Transfer"/> writes the adapter retargeted at the new base, and
/// optionally the new base with the adapter merged in.
/// </summary>
public static partial class AdapterTransfer
{
    /// <summary>Safetensors metadata key of a transferred adapter: the base it was trained on.</summary>
    public const string TransferredFromKey = "transferred_from";

    /// <summary>Files of a Hugging Face model folder, besides the weights, that a merged model keeps from its base.</summary>
    private static readonly string[] TokenizerFiles =
        ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt", "generation_config.json"];

    // Config fields whose difference makes the adapter's tensors (or the layer they plug into) meaningless.
    private static readonly HashSet<string> AdapterCriticalFields =
        ["model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim"];

    [GeneratedRegex(@"^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_(A|B)\.weight$")]
    private static partial Regex LoraTensorName();

    /// <summary>
    /// Compares an adapter folder (PEFT layout) with a new base folder (config.json + safetensors) and
    /// reports every incompatibility, not just the first: architecture fields against the old base's config
    /// when it can be found, and each LoRA module's shapes against the new base's weight of that module.
    /// Reads only headers and configs; never throws for a problem it can describe.
    /// </summary>
    public static TransferReport Check(string adapterDir, string newBaseDir, string? oldBaseDir = null)
    {
        var issues = new List<TransferIssue>();
        void Error(string subject, string problem, string? a = null, string? b = null) => issues.Add(new(TransferSeverity.Error, subject, problem, a, b));
        void Warn(string subject, string problem, string? a = null, string? b = null) => issues.Add(new(TransferSeverity.Warning, subject, problem, a, b));
        TransferReport Report(string? oldBase = null, string? oldCfgPath = null, int modules = 0, int? rank = null, TransPeftSettings? tp = null) => new()
        {
            AdapterDir = adapterDir, NewBaseDir = newBaseDir, OldBase = oldBase, OldBaseConfigPath = oldCfgPath,
            AdapterModules = modules, Rank = rank, TransPeft = tp, Issues = issues,
        };

        // The adapter: config (rank, recorded base) and tensor header.
        var cfgPath = Path.Combine(adapterDir, LoraAdapter.ConfigFileName);
        var wPath = Path.Combine(adapterDir, LoraAdapter.WeightsFileName);
        LoraConfig? loraConfig = null;
        string? oldBase = null;
        if (!File.Exists(cfgPath)) Error(cfgPath, "adapter config not found");
        else
        {
            try { (loraConfig, oldBase) = LoraAdapter.ReadConfig(cfgPath); }
            catch (FormatException e) { Error(cfgPath, e.Message); }
        }
        if (!File.Exists(wPath)) { Error(wPath, "adapter weights not found"); return Report(oldBase); }
        using var adapterFile = TryOpen(wPath, Error);
        if (adapterFile is null) return Report(oldBase);
        TransPeftSettings? tp = null;
        if (adapterFile.Metadata.TryGetValue(TransPeftSettings.MetadataKey, out var tpJson))
        {
            try { tp = TransPeftSettings.Parse(tpJson, wPath); }
            catch (FormatException e) { Warn(TransPeftSettings.MetadataKey, $"unreadable Trans-PEFT settings ({e.Message}); they are copied unchanged"); }
        }

        // The new base: config and the real weight shapes.
        ModelConfig newConfig;
        try { newConfig = ModelConfig.Load(newBaseDir); }
        catch (Exception e) when (e is FormatException or IOException) { Error(Path.Combine(newBaseDir, "config.json"), e.Message); return Report(oldBase, tp: tp); }
        // PEFT refuses a config whose target_modules name nothing in the model; a transfer must not carry one along.
        foreach (var t in loraConfig?.UnmatchedTargets(newConfig.NumLayers) ?? [])
            Error($"{cfgPath}: target_modules", $"'{t}' matches no module of the new base");
        SafetensorsCheckpoint ck;
        try { ck = SafetensorsCheckpoint.Open(newBaseDir); }
        catch (Exception e) when (e is FormatException or IOException) { Error(newBaseDir, $"new base weights unreadable: {e.Message}"); return Report(oldBase, tp: tp); }
        using var _ = ck;

        // The old base's architecture, when its config can be found, field by field.
        string? oldCfgPath = FindOldBaseConfig(oldBaseDir, oldBase, adapterDir, Error);
        if (oldCfgPath is not null)
        {
            try
            {
                var oldConfig = ModelConfig.Load(oldCfgPath);
                foreach (var d in ArchitectureDiff.Compare(oldConfig, newConfig))
                {
                    string problem = $"old base {d.Left}, new base {d.Right}";
                    if (AdapterCriticalFields.Contains(d.Field)) Error(d.Field, problem, d.Left, d.Right);
                    else Warn(d.Field, $"{problem} (the adapter's tensors do not depend on it, but the model's behaviour does)", d.Left, d.Right);
                }
            }
            catch (FormatException e) { Error(oldCfgPath, $"old base config unreadable: {e.Message}"); }
        }
        else if (oldBaseDir is null)
        {
            Warn("old base", oldBase is null
                ? "the adapter records no base_model_name_or_path; the architecture is compared through the tensor shapes only"
                : $"'{oldBase}' is not a local folder with a config.json; the architecture is compared through the tensor shapes only");
        }

        // Each LoRA module against the new base's weight of the same name.
        var modules = new SortedDictionary<(int Layer, Projection P), (TensorInfo? A, TensorInfo? B)>();
        foreach (var name in adapterFile.Names)
        {
            var m = LoraTensorName().Match(name);
            Projection p = default;
            if (!m.Success || !ProjectionNames.TryParseShort(m.Groups[3].Value, out p) || !p.ModulePath().StartsWith(m.Groups[2].Value + ".", StringComparison.Ordinal))
            {
                Error(name, "not a lora_A/lora_B weight of a decoder projection (q/k/v/o_proj under self_attn, gate/up/down_proj under mlp); such tensors are not transferable");
                continue;
            }
            if (!int.TryParse(m.Groups[1].Value, out int layer)) { Error(name, "layer index out of range"); continue; }
            var info = adapterFile.GetInfo(name);
            var cur = modules.GetValueOrDefault((layer, p));
            modules[(layer, p)] = m.Groups[4].Value == "A" ? (info, cur.B) : (cur.A, info);
        }
        var ranks = new SortedSet<int>();
        foreach (var ((layer, p), (a, b)) in modules)
        {
            string module = p.FullName(layer);
            if (a is null || b is null) { Error(module, $"lora_{(a is null ? "A" : "B")} is missing: lora_A and lora_B must come in pairs"); continue; }
            string sa = ArchitectureDiff.Shape(a.Shape), sb = ArchitectureDiff.Shape(b.Shape);
            if (a.Shape.Length != 2 || b.Shape.Length != 2) { Error(module, $"lora_A {sa} and lora_B {sb} must both be 2-D"); continue; }
            long r = a.Shape[0];
            ranks.Add((int)r);
            if (b.Shape[1] != r) Error(module, $"lora_A {sa} has rank {r} but lora_B {sb} has rank {b.Shape[1]}", sa, sb);
            else if (loraConfig is not null && r != loraConfig.R) Error(module, $"rank {r} differs from r = {loraConfig.R} in {LoraAdapter.ConfigFileName} (rank_pattern is not supported)");

            string weightName = $"{module}.weight";
            if (!ck.Contains(weightName))
            {
                Error(module, layer >= newConfig.NumLayers
                    ? $"module missing from the new base: it has {newConfig.NumLayers} layers (0..{newConfig.NumLayers - 1})"
                    : $"module missing from the new base: no tensor '{weightName}'");
                continue;
            }
            var w = ck.GetInfo(weightName).Shape;
            string sw = ArchitectureDiff.Shape(w);
            if (w.Length != 2) { Error(module, $"the new base's weight {sw} is not a matrix", null, sw); continue; }
            if (a.Shape[1] != w[1])
                Error(module, $"lora_A is {sa} (in_features {a.Shape[1]}) but the new base's weight is {sw} (in_features {w[1]})", sa, sw);
            if (b.Shape[0] != w[0])
                Error(module, $"lora_B is {sb} (out_features {b.Shape[0]}) but the new base's weight is {sw} (out_features {w[0]})", sb, sw);
        }
        if (modules.Count == 0) Error(wPath, "the adapter holds no LoRA module");
        return Report(oldBase, oldCfgPath, modules.Count, ranks.Count == 1 ? ranks.Min : null, tp);
    }

    /// <summary>
    /// Checks the adapter against the new base (throwing <see cref="AdapterTransferException"/> with every error
    /// when it does not fit), then writes to <paramref name="outDir"/> the same adapter retargeted at the new base:
    /// tensors copied byte for byte, adapter_config.json unchanged except base_model_name_or_path, the safetensors
    /// metadata (Trans-PEFT settings included) kept, plus "transferred_from" naming the old base. With
    /// <paramref name="merge"/>, also writes the new base with the adapter merged in (a plain Hugging Face model,
    /// tokenizer files copied from the new base).
    /// </summary>
    public static TransferResult Transfer(string adapterDir, string newBaseDir, string outDir, bool merge = false, TransferOptions? options = null)
    {
        options ??= new TransferOptions();
        if (Path.GetFullPath(outDir).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(adapterDir).TrimEnd(Path.DirectorySeparatorChar))
            throw new ArgumentException($"{outDir}: write the transferred adapter to a new folder; the original stays as the adapter of its old base");
        var report = Check(adapterDir, newBaseDir, options.OldBaseDir);
        if (!report.IsCompatible) throw new AdapterTransferException(report);

        Directory.CreateDirectory(outDir);
        var cfgPath = Path.Combine(adapterDir, LoraAdapter.ConfigFileName);
        var config = LoraAdapter.ReadConfigJson(cfgPath);
        config["base_model_name_or_path"] = options.BaseModelName ?? Path.GetFullPath(newBaseDir);

        var writer = new SafetensorsWriter();
        using (var reader = SafetensorsReader.Open(Path.Combine(adapterDir, LoraAdapter.WeightsFileName)))
        {
            foreach (var (k, v) in reader.Metadata) writer.AddMetadata(k, v);
            writer.AddMetadata(TransferredFromKey, report.OldBase ?? "(unrecorded)");
            foreach (var name in reader.Names)
            {
                var info = reader.GetInfo(name);
                writer.Add(name, info.DType, info.Shape, reader.GetBytes(name).ToArray());
            }
        }
        writer.Save(Path.Combine(outDir, LoraAdapter.WeightsFileName));
        AtomicFile.WriteAllText(Path.Combine(outDir, LoraAdapter.ConfigFileName), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        string? mergedDir = null;
        if (merge)
        {
            mergedDir = options.MergedDir ?? Path.Combine(outDir, "merged");
            var baseModel = TransformerModel.Load(newBaseDir);
            var adapter = LoraAdapter.Load(outDir, baseModel.Config);
            LoraMerge.Merge(baseModel, adapter).Save(mergedDir, options.MergedDType);
            foreach (var f in TokenizerFiles)
            {
                var src = Path.Combine(newBaseDir, f);
                if (File.Exists(src)) AtomicFile.WriteAllBytes(Path.Combine(mergedDir, f), File.ReadAllBytes(src));
            }
        }
        return new TransferResult(report, outDir, mergedDir);
    }

    private static SafetensorsReader? TryOpen(string path, Action<string, string, string?, string?> error)
    {
        try { return SafetensorsReader.Open(path); }
        catch (Exception e) when (e is FormatException or IOException) { error(path, e.Message, null, null); return null; }
    }

    /// <summary>The old base's config.json: the folder given, else the adapter's recorded base when it is a
    /// local folder (as given, or relative to the adapter folder).</summary>
    private static string? FindOldBaseConfig(string? oldBaseDir, string? recorded, string adapterDir, Action<string, string, string?, string?> error)
    {
        if (oldBaseDir is not null)
        {
            var p = Path.Combine(oldBaseDir, "config.json");
            if (File.Exists(p)) return p;
            error(p, "old base config not found", null, null);
            return null;
        }
        if (string.IsNullOrWhiteSpace(recorded)) return null;
        foreach (var dir in new[] { recorded, Path.Combine(adapterDir, recorded) })
        {
            var p = Path.Combine(dir, "config.json");
            if (File.Exists(p)) return p;
        }
        return null;
    }
}
