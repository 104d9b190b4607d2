using TransPeft.Engine.Sessions;
using TransPeft.Engine.Text;

namespace TransPeft.Cli.Commands;

/// <summary>
/// What the model commands (generate, score, eval, analyze-update, train) load the same way: a session over the
/// model folder on the chosen device, with the --adapter folder loaded under <see cref="AdapterName"/> and the
/// tokenizer from --tokenizer, else the model folder's.
/// </summary>
internal static class ModelInputs
{
    /// <summary>The name the --adapter folder is served under in a command's session.</summary>
    public const string AdapterName = "adapter";

    public static InferenceSession OpenSession(string modelDir, string? tokenizerFlag, bool required, string why, SessionOptions options, string? adapterDir = null)
    {
        var tokenizer = tokenizerFlag is not null ? TokenizerLoader.Load(tokenizerFlag) : null;
        var session = DeviceChoice.Open(() => InferenceSession.Load(modelDir, options, tokenizer), options);
        try
        {
            if (required && session.Tokenizer is null)
                throw new FileNotFoundException($"{modelDir}: no tokenizer in the model folder ({TokenizerLoader.TokenizerJsonFileName}, "
                    + $"{TokenizerLoader.SentencePieceFileName} or {TokenizerLoader.CompactFileName}), which {why}; pass --tokenizer",
                    Path.Combine(modelDir, TokenizerLoader.TokenizerJsonFileName));
            if (adapterDir is not null) session.Adapters.Load(AdapterName, adapterDir);
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>The adapter name to pass to the session: <see cref="AdapterName"/> when --adapter was given.</summary>
    public static string? AdapterOf(string? adapterDir) => adapterDir is null ? null : AdapterName;
}
