using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.Lora;

/// <summary>
/// A set of LoRA modules over one base architecture, saved and loaded in the Hugging Face PEFT
/// layout: <c>adapter_config.json</c> + <c>adapter_model.safetensors</c> with keys
/// <c>base_model.model.model.layers.{i}.{self_attn|mlp}.{proj}.lora_{A|B}.weight</c>.
/// </summary>
public sealed class LoraAdapter
{
    public const string ConfigFileName = "adapter_config.json";
    public const string WeightsFileName = "adapter_model.safetensors";

    private readonly LoraModule?[,] _modules;

    public LoraConfig Config { get; }
    public int NumLayers { get; }
    /// <summary>Free-form string metadata stored in the safetensors header (PEFT ignores it); Trans-PEFT settings travel here.</summary>
    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);
    /// <summary>adapter_config.json's base_model_name_or_path, when known.</summary>
    public string? BaseModelNameOrPath { get; set; }

    internal LoraAdapter(LoraConfig config, int numLayers)
    {
        Config = config; NumLayers = numLayers;
        _modules = new LoraModule?[numLayers, ProjectionNames.All.Length];
    }

    internal LoraModule? this[int layer, Projection p] => _modules[layer, (int)p];

    internal IEnumerable<LoraModule> Modules()
    {
        for (int l = 0; l < NumLayers; l++)
            foreach (var p in ProjectionNames.All)
                if (_modules[l, (int)p] is { } m) yield return m;
    }

    internal IEnumerable<Parameter> Parameters() => Modules().SelectMany(m => new[] { m.A, m.B });

    /// <summary>Rounds every weight to the nearest bf16 value (ties to even), in place: what a session serving adapters at
    /// bf16 (<c>SessionOptions.AdapterPrecision</c>) computes with on every path.</summary>
    internal void RoundToBf16()
    {
        foreach (var p in Parameters())
            foreach (ref float v in p.Data.AsSpan()) v = IO.BFloat16.ToSingle(IO.BFloat16.FromSingle(v));
    }

    /// <summary>Every A and B matrix by its PEFT name (…q_proj.lora_A.weight), writable: hosts and tools may
    /// inspect or set values (A is [r, in], B is [out, r], row-major).</summary>
    public IEnumerable<(string Name, Memory<float> Values)> Tensors() => Parameters().Select(p => (p.Name, (Memory<float>)p.Data));

    public int ModuleCount => Modules().Count();
    public long ParameterCount => Parameters().Sum(p => (long)p.Length);

    internal static (int In, int Out) Dims(ModelConfig c, Projection p) => p switch
    {
        Projection.Q => (c.HiddenSize, c.QDim),
        Projection.K or Projection.V => (c.HiddenSize, c.KvDim),
        Projection.O => (c.QDim, c.HiddenSize),
        Projection.Gate or Projection.Up => (c.HiddenSize, c.IntermediateSize),
        _ => (c.IntermediateSize, c.HiddenSize),
    };

    /// <summary>
    /// A fresh adapter: A Kaiming-uniform (PEFT's default, bound 1/sqrt(in)) or Gaussian N(0, 1/r), B zero,
    /// so the adapted model starts equal to the base.
    /// </summary>
    public static LoraAdapter Create(ModelConfig model, LoraConfig config, int seed)
    {
        config.Validate();
        var adapter = new LoraAdapter(config, model.NumLayers);
        var rng = new Random(seed);
        float scaling = (float)config.Scaling;
        for (int l = 0; l < model.NumLayers; l++)
            foreach (var p in ProjectionNames.All)
            {
                if (!config.Targets(l, p)) continue;
                var (din, dout) = Dims(model, p);
                var a = Parameter.Zeros($"base_model.model.{p.FullName(l)}.lora_A.weight", config.R, din);
                var b = Parameter.Zeros($"base_model.model.{p.FullName(l)}.lora_B.weight", dout, config.R);
                if (config.Init == LoraInit.KaimingUniform)
                {
                    double bound = 1.0 / Math.Sqrt(din);
                    for (int k = 0; k < a.Length; k++) a.Data[k] = (float)((rng.NextDouble() * 2 - 1) * bound);
                }
                else
                {
                    double std = 1.0 / config.R;
                    for (int k = 0; k < a.Length; k++)
                    {
                        double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                        a.Data[k] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2) * std);
                    }
                }
                adapter._modules[l, (int)p] = new LoraModule(l, p, a, b, scaling, config.Dropout);
            }
        if (adapter.ModuleCount == 0)
            throw new ArgumentException($"LoRA target selection ({Describe(config)}) matches no module of this {model.ModelType} model");
        return adapter;
    }

    private static string Describe(LoraConfig c) => c.TargetRegex is not null ? $"regex '{c.TargetRegex}'" : $"target_modules [{string.Join(", ", c.TargetModules)}]";

    /// <summary>Loads a PEFT adapter folder and checks every tensor against the base architecture.</summary>
    public static LoraAdapter Load(string dir, ModelConfig model)
    {
        var cfgPath = Path.Combine(dir, ConfigFileName);
        var wPath = Path.Combine(dir, WeightsFileName);
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{cfgPath}: adapter config not found", cfgPath);
        if (!File.Exists(wPath)) throw new FileNotFoundException($"{wPath}: adapter weights not found", wPath);
        var (config, baseName) = ReadConfig(cfgPath);
        if (config.UnmatchedTargets(model.NumLayers) is { Count: > 0 } unmatched)
            throw new ModelConfigException(cfgPath, "target_modules",
                $"names of modules of the model (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, all-linear, or full names); "
                + $"{string.Join(", ", unmatched.Select(t => $"'{t}'"))} matches no module of this {model.NumLayers}-layer model");
        var adapter = new LoraAdapter(config, model.NumLayers) { BaseModelNameOrPath = baseName };
        using var reader = SafetensorsReader.Open(wPath);
        foreach (var (k, v) in reader.Metadata) if (k != "format") adapter.Metadata[k] = v;
        float scaling = (float)config.Scaling;

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int l = 0; l < model.NumLayers; l++)
            foreach (var p in ProjectionNames.All)
            {
                string keyA = $"base_model.model.{p.FullName(l)}.lora_A.weight";
                string keyB = $"base_model.model.{p.FullName(l)}.lora_B.weight";
                bool hasA = reader.Contains(keyA), hasB = reader.Contains(keyB);
                if (!hasA && !hasB) continue;
                if (hasA != hasB)
                    throw new SafetensorsFormatException(wPath, hasA ? keyB : keyA, "missing: lora_A and lora_B must come in pairs");
                var (din, dout) = Dims(model, p);
                var ia = reader.GetInfo(keyA); var ib = reader.GetInfo(keyB);
                if (ia.Shape.Length != 2 || ia.Shape[1] != din)
                    throw new SafetensorsFormatException(wPath, keyA, $"shape [{string.Join(", ", ia.Shape)}] does not fit the base: expected [r, {din}] (in_features of {p.FullName(l)})");
                int r = (int)ia.Shape[0];
                if (ib.Shape.Length != 2 || ib.Shape[0] != dout || ib.Shape[1] != r)
                    throw new SafetensorsFormatException(wPath, keyB, $"shape [{string.Join(", ", ib.Shape)}] does not fit the base: expected [{dout}, {r}] (out_features of {p.FullName(l)}, rank)");
                if (r != config.R)
                    throw new SafetensorsFormatException(wPath, keyA, $"rank {r} differs from r = {config.R} in {ConfigFileName} (rank_pattern is not supported)");
                var a = new Parameter(keyA, [r, din], reader.ReadFloat32(keyA));
                var b = new Parameter(keyB, [dout, r], reader.ReadFloat32(keyB));
                NonFiniteValueException.ThrowIfAny(a.Data, wPath, $"tensor '{keyA}'");
                NonFiniteValueException.ThrowIfAny(b.Data, wPath, $"tensor '{keyB}'");
                adapter._modules[l, (int)p] = new LoraModule(l, p, a, b, scaling, config.Dropout);
                seen.Add(keyA); seen.Add(keyB);
            }
        var stray = reader.Names.FirstOrDefault(n => !seen.Contains(n));
        if (stray is not null)
            throw new SafetensorsFormatException(wPath, stray, $"tensor names no LoRA module of this {model.NumLayers}-layer {model.ModelType} base (module missing from the base, or not a lora_A/lora_B weight)");
        if (adapter.ModuleCount == 0)
            throw new SafetensorsFormatException(wPath, null, "adapter holds no LoRA tensors");
        return adapter;
    }

    /// <summary>adapter_config.json as a JSON object, read by the rules of <see cref="JsonInput"/>.</summary>
    public static JsonObject ReadConfigJson(string cfgPath) => JsonInput.ReadConfigObject(cfgPath);

    internal static (LoraConfig, string?) ReadConfig(string cfgPath)
    {
        JsonObject o = ReadConfigJson(cfgPath);

        // Every known field is type-checked: a field of the wrong type must not silently fall back to a default.
        string? Str(string key) => o[key] switch
        {
            null => null,
            var n when JsonInput.StringOf(n, out _) is { } s => s,
            var n => throw new ModelConfigException(cfgPath, key, $"a string, got {n.ToJsonString()}"),
        };
        double? Num(string key) => o[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out double d) => d,
            var n => throw new ModelConfigException(cfgPath, key, $"a number, got {n.ToJsonString()}"),
        };
        bool? Bool(string key) => o[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out bool b) => b,
            var n => throw new ModelConfigException(cfgPath, key, $"true or false, got {n.ToJsonString()}"),
        };

        string? peftType = Str("peft_type");
        if (peftType is not null && peftType != "LORA") throw new ModelConfigException(cfgPath, "peft_type", $"\"LORA\", got \"{peftType}\"");
        int r = o["r"] is JsonValue rv && rv.TryGetValue(out int ri) ? ri
            : throw new ModelConfigException(cfgPath, "r", $"a positive integer, got {o["r"]?.ToJsonString() ?? "nothing (the field is missing)"}");
        double alpha = Num("lora_alpha") ?? 8; // PEFT's LoraConfig default
        double dropout = Num("lora_dropout") ?? 0;
        bool rs = Bool("use_rslora") ?? false;
        if (Bool("use_dora") == true)
            throw new ModelConfigException(cfgPath, "use_dora", "false (DoRA adapters are not supported)");
        if (Bool("fan_in_fan_out") == true)
            throw new ModelConfigException(cfgPath, "fan_in_fan_out", "false (weights stored [out, in])");
        if (Str("bias") is { } bias && bias != "none")
            throw new ModelConfigException(cfgPath, "bias", $"\"none\", got \"{bias}\" (LoRA biases are not supported)");
        // Per-module rank or alpha overrides would change the scaling of some modules: refuse rather than ignore.
        foreach (var key in new[] { "rank_pattern", "alpha_pattern" })
            if (o[key] is { } pat && !(pat is JsonObject po && po.Count == 0))
                throw new ModelConfigException(cfgPath, key, "an empty object (per-module rank/alpha overrides are not supported)");
        List<string> targets = [];
        string? regex = null;
        switch (o["target_modules"])
        {
            case JsonArray arr:
                foreach (var n in arr)
                    targets.Add(JsonInput.StringOf(n, out _) is { } t && t.Length > 0 ? t
                        : throw new ModelConfigException(cfgPath, "target_modules", $"module names as strings, got {n?.ToJsonString() ?? "null"}"));
                break;
            case var v when JsonInput.StringOf(v, out _) is { } s:
                if (s == "all-linear") targets = ["all-linear"]; else regex = s;
                break;
            case null: throw new ModelConfigException(cfgPath, "target_modules", "a list of module names or a regex string (the field is missing)");
            case var n: throw new ModelConfigException(cfgPath, "target_modules", $"a list of module names or a regex string, got {n.ToJsonString()}");
        }
        if (r <= 0) throw new ModelConfigException(cfgPath, "r", $"a positive integer, got {r}");
        if (alpha <= 0) throw new ModelConfigException(cfgPath, "lora_alpha", $"a positive number, got {alpha}");
        if (dropout is < 0 or >= 1) throw new ModelConfigException(cfgPath, "lora_dropout", $"a probability in [0, 1), got {dropout}");
        if (regex is not null)
        {
            try { _ = new System.Text.RegularExpressions.Regex(regex); }
            catch (ArgumentException e) { throw new ModelConfigException(cfgPath, "target_modules", $"a valid regular expression: {e.Message}"); }
        }
        var config = new LoraConfig { R = r, Alpha = alpha, Dropout = dropout, UseRsLora = rs, TargetModules = targets, TargetRegex = regex };
        try { config.Validate(); }
        catch (ArgumentException e) { throw new ModelConfigException(cfgPath, "(lora)", e.Message); }
        return (config, Str("base_model_name_or_path"));
    }

    /// <summary>Writes adapter_config.json and adapter_model.safetensors (F32) atomically.</summary>
    public void Save(string dir)
    {
        Directory.CreateDirectory(dir);
        var w = new SafetensorsWriter().AddMetadata("format", "pt");
        foreach (var (k, v) in Metadata) w.AddMetadata(k, v);
        foreach (var p in Parameters()) w.AddFloat(p.Name, p.Data, p.LongShape);
        w.Save(Path.Combine(dir, WeightsFileName));

        JsonNode targets = Config.TargetRegex is not null ? JsonValue.Create(Config.TargetRegex)!
            : Config.TargetModules.Contains("all-linear")
                ? new JsonArray(Modules().Select(m => m.Projection.ShortName()).Distinct().Select(s => (JsonNode)s!).ToArray())
                : new JsonArray(Config.TargetModules.Select(s => (JsonNode)s!).ToArray());
        var o = new JsonObject
        {
            ["alpha_pattern"] = new JsonObject(),
            ["base_model_name_or_path"] = BaseModelNameOrPath,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
            ["init_lora_weights"] = Config.Init == LoraInit.Gaussian ? "gaussian" : true,
            ["layers_to_transform"] = null,
            ["lora_alpha"] = Config.Alpha,
            ["lora_dropout"] = Config.Dropout,
            ["modules_to_save"] = null,
            ["peft_type"] = "LORA",
            ["r"] = Config.R,
            ["rank_pattern"] = new JsonObject(),
            ["target_modules"] = targets,
            ["task_type"] = "CAUSAL_LM",
            ["use_dora"] = false,
            ["use_rslora"] = Config.UseRsLora,
        };
        AtomicFile.WriteAllText(Path.Combine(dir, ConfigFileName), o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    internal LoraAdapter Clone()
    {
        var c = new LoraAdapter(Config, NumLayers) { BaseModelNameOrPath = BaseModelNameOrPath };
        foreach (var (k, v) in Metadata) c.Metadata[k] = v;
        foreach (var m in Modules())
            c._modules[m.Layer, (int)m.Projection] = new LoraModule(m.Layer, m.Projection,
                new Parameter(m.A.Name, m.A.Shape, (float[])m.A.Data.Clone()),
                new Parameter(m.B.Name, m.B.Shape, (float[])m.B.Data.Clone()), m.Scaling, m.Dropout);
        return c;
    }
}
