using TransPeft.Engine.Training;

namespace TransPeft.Experiments;

/// <summary>Where everything lives in an experiment's output folder.</summary>
public sealed class ExperimentLayout(string root)
{
    public string Root { get; } = Path.GetFullPath(root);
    public string Settings => Path.Combine(Root, "experiment.json");
    public string Data => Path.Combine(Root, "data");
    public string TokenCache => Path.Combine(Root, "cache", "tokenized");
    public string Models => Path.Combine(Root, "models");
    public string V1Init => Path.Combine(Models, "v1-init");
    public string V1Run => Path.Combine(Models, "v1");
    public string V2Run => Path.Combine(Models, "v2");
    public string UpdateText => Path.Combine(Models, "update-train.txt");
    /// <summary>The trainer writes a finished run's weights here.</summary>
    public static string Final(string run) => new TrainingRunFolder(run).FinalWeights;
    public string V1 => Final(V1Run);
    public string V2 => Final(V2Run);
    public string Analysis => Path.Combine(Root, "analysis");
    public string Plots => Path.Combine(Root, "plots");
    public string Results => Path.Combine(Root, "results.json");
    public string Report => Path.Combine(Root, "report.md");
    public string Stages => Path.Combine(Root, "stages");

    /// <summary>A task's pre-tokenized adapter training records (<see cref="AdapterData"/>).</summary>
    public string AdapterData(string task) => Path.Combine(Root, "adapter-data", task + ".train.jsonl");

    internal string AdapterRun(AdapterKey k) => Path.Combine(Root, "adapters", k.Task, k.Id);
    internal string Adapter(AdapterKey k) => Final(AdapterRun(k));
    /// <summary>The adapter retargeted at v2 by AdapterTransfer.</summary>
    internal string Transferred(AdapterKey k) => Path.Combine(AdapterRun(k), "on-v2");

    /// <summary>Folders a --restart removes (the built data is kept: its own fingerprint decides reuse).</summary>
    public IEnumerable<string> RunOutputs => [Stages, Models, Path.Combine(Root, "adapters"), Path.Combine(Root, "adapter-data"), Analysis, Plots, Results, Report, Settings];
}
