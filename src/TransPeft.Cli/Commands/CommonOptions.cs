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

    public static Option<int> Seed(int def = 0) => new("--seed") { Description = "Random seed", DefaultValueFactory = _ => def };
}
