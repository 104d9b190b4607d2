namespace TransPeft.Experiments;

/// <summary>One trained adapter of the experiment: its task, how it was trained, on which base, with which seed.</summary>
internal sealed record AdapterKey(string Task, AdapterVariant Variant, string Base, int Seed)
{
    public const string OldBase = "v1", NewBase = "v2";

    /// <summary>"plain-v1-seed3", "drop0.1-v1-seed3", "plain-v2-seed3".</summary>
    public string Id => $"{Variant.Id}-{Base}-seed{Seed}";

    public string TrainStage => $"train/{Task}/{Id}";

    public string EvalStage(string onBase) => $"eval/{Task}/{Id}/on-{onBase}";
}
