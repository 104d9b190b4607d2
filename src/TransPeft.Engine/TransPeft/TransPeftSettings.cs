using System.Text.Json;
using System.Text.Json.Nodes;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;

namespace TransPeft.Engine.TransPeft;

/// <summary>
/// How an adapter was trained with Trans-PEFT: the FFN masking and dropping probabilities, the seed of the
/// Philox stream that drew the masks, and the version of the method's convention. It travels as one JSON
/// string under the key <see cref="MetadataKey"/> in the safetensors header of adapter_model.safetensors,
/// which PEFT ignores; adapter_config.json stays exactly PEFT's (PEFT rejects unknown config keys).
/// An adapter without the key is a plain LoRA adapter.
/// </summary>
public sealed record TransPeftSettings
{
    public const string MetadataKey = "trans_peft";
    public const string MethodName = "trans-peft";
    /// <summary>Version 1: mask without rescaling, one drop draw per layer and micro-batch, Philox-4x32-10
    /// counters as in <see cref="RandomStream"/>.</summary>
    public const int CurrentVersion = 1;
    public const string PhiloxRng = "philox4x32-10";

    /// <summary>Probability that one SwiGLU activation element is zeroed (intra-layer knowledge masking).</summary>
    public double PMask { get; init; }
    /// <summary>Probability that one layer's whole FFN sub-layer is skipped (cross-layer knowledge dropping).</summary>
    public double PDrop { get; init; }
    /// <summary>Seed of the random stream the masks and drops were drawn from.</summary>
    public ulong Seed { get; init; }
    public int Version { get; init; } = CurrentVersion;
    public string Rng { get; init; } = PhiloxRng;

    /// <summary>True when neither perturbation was active (the adapter is plain LoRA in effect).</summary>
    public bool IsPlainLora => PMask == 0 && PDrop == 0;

    public void Validate(string source)
    {
        if (PMask is not (>= 0 and < 1)) throw new ModelConfigException(source, "trans_peft.p_mask", $"a probability in [0, 1), got {PMask}");
        if (PDrop is not (>= 0 and < 1)) throw new ModelConfigException(source, "trans_peft.p_drop", $"a probability in [0, 1), got {PDrop}");
        if (Version < 1) throw new ModelConfigException(source, "trans_peft.version", $"a positive integer, got {Version}");
        if (string.IsNullOrEmpty(Rng)) throw new ModelConfigException(source, "trans_peft.rng", "the name of the random generator");
    }

    public string ToJson() => new JsonObject
    {
        ["method"] = MethodName,
        ["version"] = Version,
        ["p_mask"] = PMask,
        ["p_drop"] = PDrop,
        ["seed"] = Seed,
        ["rng"] = Rng,
    }.ToJsonString();

    /// <summary>Parses the metadata value; <paramref name="source"/> names where it came from in errors.</summary>
    public static TransPeftSettings Parse(string json, string source)
    {
        JsonObject o;
        try { o = JsonInput.Parse(json, JsonInput.Strict) as JsonObject ?? throw new ModelConfigException(source, MetadataKey, "a JSON object"); }
        catch (JsonException e) { throw new ModelConfigException(source, MetadataKey, $"a JSON object: {JsonInput.Describe(e)}"); }
        string? method = JsonInput.StringOf(o["method"], out _) is { } ms ? ms : null;
        if (method != MethodName) throw new ModelConfigException(source, "trans_peft.method", $"\"{MethodName}\", got {o["method"]?.ToJsonString() ?? "nothing"}");
        double Prob(string key) => o[key] switch
        {
            null => 0,
            JsonValue v when v.TryGetValue(out double d) => d,
            var n => throw new ModelConfigException(source, $"trans_peft.{key}", $"a number, got {n.ToJsonString()}"),
        };
        ulong seed = o["seed"] switch
        {
            null => 0,
            JsonValue v when v.TryGetValue(out ulong u) => u,
            JsonValue v when v.TryGetValue(out long s) && s >= 0 => (ulong)s,
            var n => throw new ModelConfigException(source, "trans_peft.seed", $"a non-negative integer, got {n.ToJsonString()}"),
        };
        int version = o["version"] is JsonValue vv && vv.TryGetValue(out int vi) ? vi
            : throw new ModelConfigException(source, "trans_peft.version", $"an integer, got {o["version"]?.ToJsonString() ?? "nothing"}");
        string rng = JsonInput.StringOf(o["rng"], out _) is { } rs ? rs : PhiloxRng;
        var settings = new TransPeftSettings { PMask = Prob("p_mask"), PDrop = Prob("p_drop"), Seed = seed, Version = version, Rng = rng };
        settings.Validate(source);
        return settings;
    }

    /// <summary>Stores these settings in the adapter's safetensors metadata (written by <see cref="LoraAdapter.Save"/>).</summary>
    public void WriteTo(LoraAdapter adapter)
    {
        Validate("(Trans-PEFT settings)");
        adapter.Metadata[MetadataKey] = ToJson();
    }

    /// <summary>The settings an adapter was trained with, or null for a plain LoRA adapter.</summary>
    public static TransPeftSettings? ReadFrom(LoraAdapter adapter, string source = "adapter metadata") =>
        adapter.Metadata.TryGetValue(MetadataKey, out var json) ? Parse(json, source) : null;

    /// <summary>Reads the settings from an adapter folder's safetensors header alone (no base model needed).</summary>
    public static TransPeftSettings? ReadFrom(string adapterDir)
    {
        var path = Path.Combine(adapterDir, LoraAdapter.WeightsFileName);
        using var reader = SafetensorsReader.Open(path);
        return reader.Metadata.TryGetValue(MetadataKey, out var json) ? Parse(json, path) : null;
    }
}
