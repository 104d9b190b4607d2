using System.CommandLine;

namespace TransPeft.Cli.Commands;

internal static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON document for machines instead of tables" };

    public static Option<string> Device() => new("--device")
    {
        Description = "auto | cpu | cuda[:N] | cuda-emulated: where to compute; auto uses the GPU when one works and says why it fell back otherwise; cuda-emulated runs the CUDA backend on the real kernels compiled for the host with g++ (slow; CI and debugging)",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string> Model(bool required = true) => new("--model", "-m") { Description = "Model folder (Hugging Face layout: config.json + model.safetensors)", Required = required };

    public static Option<string?> Adapter(string what = "applied unmerged on top of the model") =>
        new("--adapter", "-a") { Description = $"PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), {what}" };

    public static Option<string?> Tokenizer() => new("--tokenizer")
    {
        Description = "Tokenizer folder, file (tpeft_tokenizer.json) or name (gpt2, cl100k_base, ...); default: the model folder's own",
    };

    public static Option<bool> Overwrite() => new("--overwrite")
    {
        Description = "Write into an output folder that is not empty (or is an input), replacing what is there; without it such a folder is refused",
    };

    /// <summary>`--max-memory SIZE` on every command (a recursive option of the root): the most host memory a model's
    /// weights may take, e.g. 512M or 8G; without it, what the process can use. One instance, read by <see cref="MaxMemoryOf"/>.</summary>
    public static Option<string?> MaxMemory { get; } = new("--max-memory")
    {
        Description = "Most host memory the model's weights may take (bytes, or with K, M, G, T: 512M, 8G); a larger model is refused before loading. Default: what the process can use",
        Recursive = true,
    };

    /// <summary>The --max-memory value in bytes, or null when not given. Throws an <see cref="ArgumentException"/> naming the flag.</summary>
    public static long? MaxMemoryOf(ParseResult p)
    {
        string? text = p.GetValue(MaxMemory)?.Trim();
        if (string.IsNullOrEmpty(text)) return null;
        long unit = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1 };
        var digits = unit == 1 ? text : text[..^1];
        if (!double.TryParse(digits, System.Globalization.NumberStyles.AllowDecimalPoint, System.Globalization.CultureInfo.InvariantCulture, out double n)
            || !(n > 0) || n * unit >= long.MaxValue)
            throw new ArgumentException($"--max-memory: expected a positive size such as 512M or 8G, got '{text}'");
        return Math.Max(1L, (long)(n * unit));
    }

    public static Option<int> Seed(int def = 0) => new("--seed") { Description = "Random seed", DefaultValueFactory = _ => def };
}
