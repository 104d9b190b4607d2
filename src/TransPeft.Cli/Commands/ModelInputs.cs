using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;

namespace TransPeft.Cli.Commands;

/// <summary>
/// What the inference-side commands (generate, score, eval, analyze-update) load the same way: a model folder,
/// an optional adapter checked against it, and the tokenizer (from --tokenizer, else the model folder).
/// </summary>
internal static class ModelInputs
{
    public static LoraAdapter? LoadAdapter(string? adapterDir, ModelConfig config) =>
        adapterDir is null ? null : LoraAdapter.Load(adapterDir, config);

    /// <summary>The tokenizer named by --tokenizer, else the model folder's; null when <paramref name="required"/> is
    /// false and the model folder has none (models made by `tpeft init` carry no tokenizer).</summary>
    public static TokenizerInfo? LoadTokenizer(string? tokenizerFlag, string modelDir, bool required, string why)
    {
        if (tokenizerFlag is not null) return TokenizerLoader.Load(tokenizerFlag);
        try { return TokenizerLoader.Load(modelDir); }
        catch (FileNotFoundException) when (!required) { return null; }
        catch (FileNotFoundException e)
        {
            throw new FileNotFoundException($"{modelDir}: no tokenizer in the model folder ({TokenizerLoader.TokenizerJsonFileName}, "
                + $"{TokenizerLoader.SentencePieceFileName} or {TokenizerLoader.CompactFileName}), which {why}; pass --tokenizer", e.FileName, e);
        }
    }

    /// <summary>
    /// The dataset tokenizer exactly as a training run builds it (TrainingRun): EOS from the tokenizer or the
    /// model config, BOS only when the tokenizer's model expects it, and an identity hashing the tokenizer file.
    /// Without a tokenizer only pre-tokenized data can be read.
    /// </summary>
    public static DatasetTokenizer ForDataset(TokenizerInfo? tok, ModelConfig config, string modelDir)
    {
        int? configEos = config.EosTokenIds.Length > 0 ? config.EosTokenIds[0] : null;
        if (tok is null)
            return new DatasetTokenizer(new PreTokenizedOnlyTokenizer(modelDir), "none", configEos ?? 0);
        if (tok.VocabSize > config.VocabSize)
            throw new ArgumentException($"tokenizer {tok.Source} has {tok.VocabSize} ids but the model's vocab_size is {config.VocabSize}: they do not belong together");
        int eos = tok.EosTokenId ?? configEos
            ?? throw new ArgumentException($"{tok.Source}: the tokenizer has no end-of-text token and {modelDir}/config.json no eos_token_id");
        var identity = DatasetTokenizer.HashFiles("tokenizer", File.Exists(tok.Source) ? [tok.Source] : []) + "|" + tok.Source;
        return new DatasetTokenizer(tok.Tokenizer, identity, eos, tok.AddBosToken ? tok.BosTokenId : null);
    }
}
