using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Training;

/// <summary>
/// What a checkpoint records besides weights and optimizer moments (trainer_state.json). There is no
/// generator state: every random decision is Philox(seed; step, micro-batch, ...) and the data order is
/// Philox(seed; epoch, position), so (seed, step, examples seen) restores all randomness exactly.
/// </summary>
internal sealed record TrainerState(
    int Step, int TotalSteps, long ExamplesSeen, long TokensSeen, double ElapsedSeconds,
    string TrainFingerprint, string? ValidationFingerprint, double? LastLoss, double? LastValLoss, int? LastEvalStep, TrainingOptions Options)
{
    public const string FileName = "trainer_state.json";
    public const string FormatVersion = "tpeft-trainer-state-v1";

    public JsonObject ToJson() => new()
    {
        ["format"] = FormatVersion,
        ["step"] = Step,
        ["total_steps"] = TotalSteps,
        ["examples_seen"] = ExamplesSeen,
        ["tokens_seen"] = TokensSeen,
        ["elapsed_s"] = ElapsedSeconds,
        ["rng"] = new JsonObject
        {
            ["generator"] = "philox4x32-10",
            ["seed"] = Options.Seed,
            ["model_counter"] = "(element / 4, lane, step, tag << 24 | micro_batch), step counted from 1",
            ["data_order"] = "Fisher-Yates per epoch, counter (i, epoch, 0, 0x10 << 24)",
        },
        ["train_fingerprint"] = TrainFingerprint,
        ["validation_fingerprint"] = ValidationFingerprint,
        ["last_loss"] = LastLoss,
        ["last_val_loss"] = LastValLoss,
        ["last_eval_step"] = LastEvalStep,
        ["options"] = TrainingOptionsJson.ToJson(Options),
    };

    public void Save(string dir) =>
        AtomicFile.WriteAllText(Path.Combine(dir, FileName), ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    public static TrainerState Load(string dir)
    {
        var path = Path.Combine(dir, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"{dir}: not a training checkpoint ({FileName} missing)", path);
        JsonObject o;
        try { o = JsonInput.Parse(JsonInput.ReadText(path), JsonInput.Strict) as JsonObject ?? throw new TrainingConfigException(path, "(file)", "a JSON object"); }
        catch (JsonException e) { throw new TrainingConfigException(path, "(file)", $"well-formed JSON ({JsonInput.Describe(e)})"); }
        string format = Str(o, "format", path);
        if (format != FormatVersion) throw new TrainingConfigException(path, "format", $"\"{FormatVersion}\"", $"\"{format}\"");
        var options = o["options"] is JsonObject oo ? TrainingOptionsJson.FromJson(oo, path) : throw new TrainingConfigException(path, "options", "an object of training options");
        return new TrainerState(
            Int(o, "step", path), Int(o, "total_steps", path), Long(o, "examples_seen", path), Long(o, "tokens_seen", path),
            Dbl(o, "elapsed_s", path) ?? 0, Str(o, "train_fingerprint", path), o["validation_fingerprint"]?.GetValue<string>(),
            Dbl(o, "last_loss", path), Dbl(o, "last_val_loss", path),
            o["last_eval_step"] is null ? null : Int(o, "last_eval_step", path), options);
    }

    private static string Str(JsonObject o, string f, string path) =>
        JsonInput.StringOf(o[f], out _) is { } s ? s : throw new TrainingConfigException(path, f, "a string");
    private static int Int(JsonObject o, string f, string path) =>
        o[f] is JsonValue v && v.TryGetValue(out int i) && i >= 0 ? i : throw new TrainingConfigException(path, f, "an integer >= 0");
    private static long Long(JsonObject o, string f, string path) =>
        o[f] is JsonValue v && v.TryGetValue(out long i) && i >= 0 ? i : throw new TrainingConfigException(path, f, "an integer >= 0");
    private static double? Dbl(JsonObject o, string f, string path) => o[f] switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out double d) => d,
        var n => throw new TrainingConfigException(path, f, "a number or null", n.ToJsonString()),
    };

    internal static string Invariant(double d) => d.ToString("R", CultureInfo.InvariantCulture);
}
