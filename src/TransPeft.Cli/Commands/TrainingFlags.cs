using System.CommandLine;
using TransPeft.Engine.Training;

namespace TransPeft.Cli.Commands;

/// <summary>
/// One command-line flag per training option (TrainingOptionsJson.FieldNames, snake_case → dash-case). Values
/// are passed to <see cref="TrainingOptionsJson.Load"/> as text overrides, so a bad value is reported by the
/// same code, naming the same field, as a bad value in a config file. Help text here teaches what each
/// option does; the accepted values and defaults come from the engine.
/// </summary>
internal static class TrainingFlags
{
    private sealed record Spec(string Help, string? HelpName = null, string[]? Aliases = null, bool IsBool = false, string? Primary = null);

    private static readonly Dictionary<string, Spec> Specs = new(StringComparer.Ordinal)
    {
        ["model"] = new("Base model folder (Hugging Face layout). Its tokenizer is used unless --tokenizer names another", "DIR", ["-m"]),
        ["tokenizer"] = new("Tokenizer folder, tpeft_tokenizer.json file, or tiktoken name (gpt2, cl100k_base); default: the model's", "DIR|NAME"),
        ["data"] = new("Training data: .txt (one document), JSONL of {\"text\"}, {\"prompt\",\"completion\"} (loss on the completion), Alpaca {\"instruction\",\"input\",\"output\"} or pre-tokenized {\"input_ids\",\"labels\"}", "FILE"),
        ["val_data"] = new("Validation file in the same formats; its loss is reported every --eval-every steps and at the end", "FILE"),
        ["val_fraction"] = new("Hold out this fraction of the training file for validation instead of --val-data (chosen by --seed)", "X"),
        ["data_format"] = new("Force the data format instead of detecting it from the extension and first record", "FORMAT"),
        ["cache_dir"] = new("Tokenization cache folder (default: $TPEFT_CACHE_DIR/tokens, else ~/.cache/tpeft/tokens)", "DIR"),
        ["output"] = new("Output folder: checkpoints/, final/ (the adapter or full model), metrics.jsonl, loss.png", "DIR", ["-o"], Primary: "--out"),
        ["method"] = new("What is trained: lora (an adapter on the frozen base) or full (every weight; writes a complete model)", "lora|full"),
        ["lora_r"] = new("LoRA rank r: the width of the low-rank update B·A", "N"),
        ["lora_alpha"] = new("LoRA alpha: the update is scaled by alpha/r (alpha/sqrt(r) with --use-rslora)", "X"),
        ["lora_dropout"] = new("Dropout on the LoRA branch's input during training", "P"),
        ["lora_targets"] = new("Comma-separated modules that get an adapter (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) or all-linear", "LIST"),
        ["lora_target_regex"] = new("Regex over full module names (model.layers.3.mlp.up_proj) instead of --lora-targets", "REGEX"),
        ["use_rslora"] = new("Rank-stabilised LoRA: scale by alpha/sqrt(r), so larger ranks keep their learning speed", null, ["--rslora"], true),
        ["lora_init"] = new("Initialisation of A (B starts at zero, so training starts from the base model)", "kaiming|gaussian"),
        ["adapter_init"] = new("Continue from this PEFT adapter instead of a fresh one (e.g. re-tuning a transferred adapter)", "DIR"),
        ["optimizer"] = new("AdamW (decoupled weight decay) or SGD (with --momentum)", "adamw|sgd"),
        ["lr"] = new("Peak learning rate (reached after warmup, then following --schedule)", "X"),
        ["weight_decay"] = new("Decoupled weight decay on matrices (not on norms or biases)", "X"),
        ["beta1"] = new("AdamW first-moment decay", "X"),
        ["beta2"] = new("AdamW second-moment decay", "X"),
        ["eps"] = new("AdamW epsilon", "X"),
        ["momentum"] = new("SGD momentum (only with --optimizer sgd)", "X"),
        ["schedule"] = new("Learning-rate shape after warmup: constant, linear decay to 0, or cosine decay to 0", "constant|linear|cosine"),
        ["warmup_steps"] = new("Linear warmup from 0 over this many steps", "N", ["--warmup"]),
        ["warmup_ratio"] = new("Warmup as a fraction of the total steps (instead of --warmup-steps)", "X"),
        ["steps"] = new("Optimizer steps to run (instead of --epochs); may be raised when resuming", "N"),
        ["epochs"] = new("Passes over the training data (used when --steps is not given; 1 when neither is)", "X"),
        ["batch_size"] = new("Sequences per micro-batch (one forward/backward)", "N"),
        ["grad_accum"] = new("Micro-batches per optimizer step: the step sees batch_size x grad_accum sequences", "N"),
        ["max_grad_norm"] = new("Clip the global gradient norm to this (0 = no clipping)", "X"),
        ["seq_len"] = new("Tokens per sequence: packed text is cut to it, longer records are truncated", "N"),
        ["pad_to_seq_len"] = new("Pad every micro-batch to --seq-len instead of its longest sequence", null, null, true),
        ["pack"] = new("Concatenate examples into full --seq-len sequences (auto: yes for text, no for prompt/completion)", "true|false|auto"),
        ["shuffle"] = new("Shuffle the examples every epoch (the order is a pure function of --seed)", null, null, true),
        ["recompute"] = new("Activation recomputation: keep only each layer's input and recompute the layer in the backward (one more forward per step, far less activation memory; identical gradients)", null, null, true),
        ["cuda_graphs"] = new("CUDA backend: record each training step as a CUDA graph (one per shape and layer-drop pattern) and replay it for later steps; per-step values come from device memory, so results are identical; ignored on the CPU", null, null, true),
        ["seed"] = new("Seed of the data order, LoRA init, dropout and Trans-PEFT masks (runs are reproducible)", "N"),
        ["eval_every"] = new("Compute the validation loss every N steps (0 = only at the end)", "N"),
        ["eval_batches"] = new("Validation micro-batches per evaluation (0 = the whole validation set)", "N"),
        ["save_every"] = new("Write a resumable checkpoint every N steps (0 = only at the end)", "N"),
        ["keep_checkpoints"] = new("Keep only the newest N checkpoints (0 = keep all)", "N"),
        ["p_mask"] = new("Trans-PEFT intra-layer masking: during training only, zero each FFN activation (per token, neuron, layer) with this probability, so the adapter does not lean on FFN knowledge an update will change (sweep 0.1-0.3)", "P"),
        ["p_drop"] = new("Trans-PEFT cross-layer dropping: during training only, skip each layer's whole FFN sub-layer for a micro-batch with this probability (released recipe 0.1; sweep 0.05-0.2)", "P"),
    };

    /// <summary>The option of every training field, in the engine's documentation order.</summary>
    public static IReadOnlyList<(string Field, Option Option)> Create()
    {
        var defaults = TrainingOptionsJson.ToJson(new TrainingOptions());
        var list = new List<(string, Option)>();
        foreach (var field in TrainingOptionsJson.FieldNames)
        {
            // A field without help text is a new engine option the CLI has not learnt yet: fail loudly (a test runs this).
            var spec = Specs.TryGetValue(field, out var s) ? s
                : throw new InvalidOperationException($"training option '{field}' has no command-line flag description in TrainingFlags");
            // The flag is the field in dash-case (--lora-r); a few read better shorter (--out), and keep the long form as an alias.
            string flag = "--" + field.Replace('_', '-');
            string primary = spec.Primary ?? flag;
            var aliasList = (spec.Aliases ?? []).Append(flag).Where(n => n != primary).Distinct().ToArray();
            string def = defaults[field] is { } d ? d.ToJsonString().Trim('"') : "unset";
            if (field == "cache_dir") def = "see above";
            string help = $"{spec.Help} [config: {field}; default: {def}]";
            Option option = spec.IsBool
                ? new Option<bool>(primary, aliasList) { Description = help }
                : new Option<string>(primary, aliasList) { Description = help, HelpName = spec.HelpName };
            list.Add((field, option));
        }
        return list;
    }

    /// <summary>Flags the user actually typed, as (field, text) overrides in command-line order.</summary>
    public static List<KeyValuePair<string, string>> Overrides(ParseResult p, IEnumerable<(string Field, Option Option)> flags)
    {
        var given = new List<(int Position, string Field, string Value)>();
        foreach (var (field, option) in flags)
        {
            if (p.GetResult(option) is not { Implicit: false } r) continue;
            string value = option switch
            {
                Option<bool> b => p.GetValue(b) ? "true" : "false",
                // "auto" reads better on a command line than the config file's null.
                Option<string> s when field == "pack" && p.GetValue(s) is { } v && v.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase) => "null",
                Option<string> s => p.GetValue(s) ?? "",
                _ => throw new InvalidOperationException(option.Name),
            };
            int position = r.IdentifierToken is { } t ? p.Tokens.ToList().IndexOf(t) : int.MaxValue;
            given.Add((position, field, value));
        }
        return given.OrderBy(g => g.Position).Select(g => KeyValuePair.Create(g.Field, g.Value)).ToList();
    }
}
