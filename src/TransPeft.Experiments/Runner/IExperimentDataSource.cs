using TransPeft.Experiments.Data;

namespace TransPeft.Experiments;

/// <summary>
/// Where the experiment's data comes from: a folder in the <see cref="ExperimentData"/> layout (tokenizer,
/// corpus A/B train and held-out text, task folders). The real source builds it from the package registries;
/// tests inject small synthetic data.
/// </summary>
public interface IExperimentDataSource
{
    /// <summary>One line for reports ("registry data, preset cpu").</summary>
    string Describe { get; }

    /// <summary>Builds (or reuses) the data in <paramref name="directory"/> and opens it.</summary>
    ExperimentData Prepare(string directory, IProgress<string> progress, CancellationToken cancel);
}
