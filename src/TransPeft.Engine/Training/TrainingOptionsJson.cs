using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Text;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Training;

/// <summary>
/// JSON form of <see cref="TrainingOptions"/> and the merge the CLI performs: defaults, then the config
/// file's fields, then explicit overrides (command-line flags, given as name/value strings). Field names
/// are snake_case ("lora_r"); an override may spell them with dashes ("lora-r", "--lora-r"). Unknown
/// fields, wrong types and out-of-range values are errors naming the source, the field and what is
/// accepted. Fields marked trajectory must match a checkpoint's to resume from it.
/// </summary>
public static class TrainingOptionsJson
{
    private sealed record Field(
        string Name, string Expected, bool Trajectory,
        Func<TrainingOptions, Value, TrainingOptions> Set, Func<TrainingOptions, JsonNode?> Get);

    private static readonly (string Name, TrainingMethod V)[] Methods = [("lora", TrainingMethod.Lora), ("full", TrainingMethod.Full)];
    private static readonly (string Name, OptimizerKind V)[] Optimizers = [("adamw", OptimizerKind.AdamW), ("sgd", OptimizerKind.Sgd)];
    private static readonly (string Name, ScheduleKind V)[] Schedules = [("constant", ScheduleKind.Constant), ("linear", ScheduleKind.Linear), ("cosine", ScheduleKind.Cosine)];
    private static readonly (string Name, LoraInit V)[] Inits = [("kaiming", LoraInit.KaimingUniform), ("gaussian", LoraInit.Gaussian)];

    private static string NameOf<T>((string Name, T V)[] table, T v) where T : struct, Enum => table.First(x => x.V.Equals(v)).Name;

    private static readonly Field[] Fields =
    [
        new("model", "a model folder path", false, (o, v) => o with { Model = v.NullableString() }, o => o.Model),
        new("tokenizer", "a tokenizer path or name", false, (o, v) => o with { Tokenizer = v.NullableString() }, o => o.Tokenizer),
        new("data", "a training data file", false, (o, v) => o with { Data = v.NullableString() }, o => o.Data),
        new("val_data", "a validation data file", false, (o, v) => o with { ValData = v.NullableString() }, o => o.ValData),
        new("val_fraction", "a number in [0, 1)", true, (o, v) => o with { ValFraction = v.Double() }, o => o.ValFraction),
        new("data_format", OneOf(DatasetFormatNames.All), true, (o, v) => o with { DataFormat = v.Enum(DatasetFormatNames.All) }, o => o.DataFormat.Name()),
        new("cache_dir", "a folder for the tokenization cache", false, (o, v) => o with { CacheDir = v.NullableString() }, o => o.CacheDir),
        new("output", "an output folder", false, (o, v) => o with { Output = v.NullableString() }, o => o.Output),

        new("method", OneOf(Methods), true, (o, v) => o with { Method = v.Enum(Methods) }, o => NameOf(Methods, o.Method)),
        new("lora_r", "a positive integer", true, (o, v) => o with { LoraR = v.Int() }, o => o.LoraR),
        new("lora_alpha", "a positive number", true, (o, v) => o with { LoraAlpha = v.Double() }, o => o.LoraAlpha),
        new("lora_dropout", "a number in [0, 1)", true, (o, v) => o with { LoraDropout = v.Double() }, o => o.LoraDropout),
        new("lora_targets", "a list of module names (q_proj, k_proj, ..., or all-linear)", true,
            (o, v) => o with { LoraTargets = v.StringList() }, o => new JsonArray(o.LoraTargets.Select(s => (JsonNode?)s).ToArray())),
        new("lora_target_regex", "a regex over full module names", true, (o, v) => o with { LoraTargetRegex = v.NullableString() }, o => o.LoraTargetRegex),
        new("use_rslora", "true or false", true, (o, v) => o with { UseRsLora = v.Bool() }, o => o.UseRsLora),
        new("lora_init", OneOf(Inits), true, (o, v) => o with { LoraInit = v.Enum(Inits) }, o => NameOf(Inits, o.LoraInit)),
        new("adapter_init", "a PEFT adapter folder", true, (o, v) => o with { AdapterInit = v.NullableString() }, o => o.AdapterInit),

        new("optimizer", OneOf(Optimizers), true, (o, v) => o with { Optimizer = v.Enum(Optimizers) }, o => NameOf(Optimizers, o.Optimizer)),
        new("lr", "a positive number", true, (o, v) => o with { LearningRate = v.Double() }, o => o.LearningRate),
        new("weight_decay", "a number >= 0", true, (o, v) => o with { WeightDecay = v.Double() }, o => o.WeightDecay),
        new("beta1", "a number in [0, 1)", true, (o, v) => o with { Beta1 = v.Double() }, o => o.Beta1),
        new("beta2", "a number in [0, 1)", true, (o, v) => o with { Beta2 = v.Double() }, o => o.Beta2),
        new("eps", "a positive number", true, (o, v) => o with { Epsilon = v.Double() }, o => o.Epsilon),
        new("momentum", "a number in [0, 1)", true, (o, v) => o with { Momentum = v.Double() }, o => o.Momentum),
        new("schedule", OneOf(Schedules), true, (o, v) => o with { Schedule = v.Enum(Schedules) }, o => NameOf(Schedules, o.Schedule)),
        new("warmup_steps", "an integer >= 0", true, (o, v) => o with { WarmupSteps = v.NullableInt() }, o => o.WarmupSteps),
        new("warmup_ratio", "a number in [0, 1)", true, (o, v) => o with { WarmupRatio = v.NullableDouble() }, o => o.WarmupRatio),

        new("steps", "a positive integer", false, (o, v) => o with { Steps = v.NullableInt() }, o => o.Steps),
        new("epochs", "a positive number", false, (o, v) => o with { Epochs = v.NullableDouble() }, o => o.Epochs),
        new("batch_size", "a positive integer", true, (o, v) => o with { BatchSize = v.Int() }, o => o.BatchSize),
        new("grad_accum", "a positive integer", true, (o, v) => o with { GradAccum = v.Int() }, o => o.GradAccum),
        new("max_grad_norm", "a number >= 0", true, (o, v) => o with { MaxGradNorm = v.Double() }, o => o.MaxGradNorm),
        new("seq_len", "an integer >= 2", true, (o, v) => o with { SeqLen = v.Int() }, o => o.SeqLen),
        new("pad_to_seq_len", "true or false", true, (o, v) => o with { PadToSeqLen = v.Bool() }, o => o.PadToSeqLen),
        new("pack", "true, false or null (auto)", true, (o, v) => o with { Pack = v.NullableBool() }, o => o.Pack),
        new("shuffle", "true or false", true, (o, v) => o with { Shuffle = v.Bool() }, o => o.Shuffle),
        new("recompute", "true or false", false, (o, v) => o with { Recompute = v.Bool() }, o => o.Recompute),
        new("cuda_graphs", "true or false", false, (o, v) => o with { CudaGraphs = v.Bool() }, o => o.CudaGraphs),
        new("seed", "an integer >= 0", true, (o, v) => o with { Seed = v.Int() }, o => o.Seed),

        new("eval_every", "an integer >= 0", false, (o, v) => o with { EvalEvery = v.Int() }, o => o.EvalEvery),
        new("eval_batches", "an integer >= 0", false, (o, v) => o with { EvalBatches = v.Int() }, o => o.EvalBatches),
        new("save_every", "an integer >= 0", false, (o, v) => o with { SaveEvery = v.Int() }, o => o.SaveEvery),
        new("keep_checkpoints", "an integer >= 0", false, (o, v) => o with { KeepCheckpoints = v.Int() }, o => o.KeepCheckpoints),

        new("p_mask", "a probability in [0, 1)", true, (o, v) => o with { PMask = v.Double() }, o => o.PMask),
        new("p_drop", "a probability in [0, 1)", true, (o, v) => o with { PDrop = v.Double() }, o => o.PDrop),
    ];

    private static readonly Dictionary<string, Field> ByName = Fields.ToDictionary(f => f.Name, StringComparer.Ordinal);

    /// <summary>Every config field name, in documentation order.</summary>
    public static IReadOnlyList<string> FieldNames { get; } = Fields.Select(f => f.Name).ToArray();

    private static string OneOf<T>((string Name, T V)[] table) => "one of " + string.Join(", ", table.Select(x => x.Name));

    /// <summary>
    /// Defaults, then <paramref name="configPath"/>'s fields (when given), then <paramref name="overrides"/>
    /// in order; validated. Errors name the file or flag that supplied the bad value.
    /// </summary>
    public static TrainingOptions Load(string? configPath, IEnumerable<KeyValuePair<string, string>>? overrides = null)
    {
        var options = new TrainingOptions();
        var provenance = new Dictionary<string, string>(StringComparer.Ordinal);
        if (configPath is not null)
        {
            if (!File.Exists(configPath)) throw new FileNotFoundException($"{configPath}: training config not found", configPath);
            JsonNode? root;
            try { root = JsonInput.Parse(JsonInput.ReadText(configPath), JsonInput.HandWritten); }
            catch (JsonException e) { throw new TrainingConfigException(configPath, "(file)", $"well-formed JSON without repeated keys ({JsonInput.Describe(e)})"); }
            if (root is not JsonObject obj) throw new TrainingConfigException(configPath, "(file)", "a JSON object of training options");
            options = Apply(options, obj, configPath, provenance);
        }
        foreach (var (rawKey, value) in overrides ?? [])
        {
            string key = NormalizeKey(rawKey);
            string source = "--" + key.Replace('_', '-');
            var field = Find(key, source);
            options = field.Set(options, new Value(null, value, source, key, field.Expected));
            provenance[key] = source;
        }
        try { options.Validate(); }
        catch (TrainingConfigException e) when (provenance.TryGetValue(e.Field, out var src))
        {
            throw new TrainingConfigException(src, e.Field, e.Expected, e.Got);
        }
        catch (TrainingConfigException e) when (configPath is not null)
        {
            throw new TrainingConfigException(configPath, e.Field, e.Expected, e.Got);
        }
        return options;
    }

    /// <summary>Sets the fields present in <paramref name="obj"/> (no validation).</summary>
    public static TrainingOptions Apply(TrainingOptions options, JsonObject obj, string source) => Apply(options, obj, source, null);

    private static TrainingOptions Apply(TrainingOptions options, JsonObject obj, string source, Dictionary<string, string>? provenance)
    {
        foreach (var (key, node) in obj)
        {
            var field = Find(key, source);
            options = field.Set(options, new Value(node, null, source, key, field.Expected));
            if (provenance is not null) provenance[key] = source;
        }
        return options;
    }

    /// <summary>Reads options written by <see cref="ToJson"/> (as stored in checkpoints) and validates them.</summary>
    public static TrainingOptions FromJson(JsonObject obj, string source)
    {
        var o = Apply(new TrainingOptions(), obj, source);
        o.Validate(source);
        return o;
    }

    /// <summary>All fields, nulls included, so the object reloads to the same options.</summary>
    public static JsonObject ToJson(TrainingOptions o)
    {
        var obj = new JsonObject();
        foreach (var f in Fields) obj[f.Name] = f.Get(o);
        return obj;
    }

    /// <summary>Trajectory fields whose values differ (name, a's value, b's value), for resume checks.</summary>
    internal static IEnumerable<(string Field, string A, string B)> TrajectoryDifferences(TrainingOptions a, TrainingOptions b)
    {
        foreach (var f in Fields.Where(f => f.Trajectory))
        {
            string x = f.Get(a)?.ToJsonString() ?? "null", y = f.Get(b)?.ToJsonString() ?? "null";
            if (x != y) yield return (f.Name, x, y);
        }
    }

    private static string NormalizeKey(string key) => key.TrimStart('-').Replace('-', '_').ToLowerInvariant();

    private static Field Find(string key, string source)
    {
        if (ByName.TryGetValue(key, out var f)) return f;
        var near = Fields.Select(x => x.Name).OrderBy(n => Distance(n, key)).First();
        throw new TrainingConfigException(source, key, $"a known training option (did you mean '{near}'? known: {string.Join(", ", FieldNames)})", "an unknown field");
    }

    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }

    /// <summary>One supplied value: a JSON node from a file, or a string from the command line.</summary>
    private readonly record struct Value(JsonNode? Node, string? Text, string Source, string Field, string Expected)
    {
        private bool FromText => Text is not null;
        private bool IsNull => FromText ? Text!.Trim().ToLowerInvariant() is "null" or "none" or "" : Node is null;

        private TrainingConfigException Bad() => new(Source, Field, Expected,
            FromText ? $"\"{Text}\"" : Node is null ? "null" : $"{JsonRecordReader.Kind(Node)} {Node.ToJsonString()}");

        public double Double()
        {
            if (FromText) return double.TryParse(Text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : throw Bad();
            return Node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double x) ? x : throw Bad();
        }

        public int Int()
        {
            if (FromText) return int.TryParse(Text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var i) ? i : throw Bad();
            return Node is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out int x) ? x : throw Bad();
        }

        public bool Bool()
        {
            if (FromText) return Text!.Trim().ToLowerInvariant() switch { "true" or "1" or "yes" => true, "false" or "0" or "no" => false, _ => throw Bad() };
            return Node is JsonValue v && v.TryGetValue(out bool b) ? b : throw Bad();
        }

        public string String()
        {
            if (FromText) return Text!;
            return JsonInput.StringOf(Node, out _) is { } s ? s : throw Bad();
        }

        public string? NullableString() => IsNull ? null : String();
        public int? NullableInt() => IsNull ? null : Int();
        public double? NullableDouble() => IsNull ? null : Double();
        public bool? NullableBool() => IsNull ? null : Bool();

        public IReadOnlyList<string> StringList()
        {
            if (FromText) return Text!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (JsonInput.StringOf(Node, out _) is { } one) return [one];
            if (Node is not JsonArray a) throw Bad();
            var list = new List<string>();
            foreach (var n in a) list.Add(JsonInput.StringOf(n, out _) is { } s ? s : throw Bad());
            return list;
        }

        public T Enum<T>((string Name, T V)[] table) where T : struct
        {
            string s = FromText ? Text!.Trim() : JsonInput.StringOf(Node, out _) is { } t ? t : throw Bad();
            foreach (var (name, value) in table)
                if (string.Equals(name, s, StringComparison.OrdinalIgnoreCase)) return value;
            throw Bad();
        }
    }
}
