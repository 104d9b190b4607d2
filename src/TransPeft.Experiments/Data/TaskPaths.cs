namespace TransPeft.Experiments.Data;

/// <summary>Where a built task's files are.</summary>
public sealed record TaskPaths(string Name, string Directory)
{
    public string TrainPath => Path.Combine(Directory, Tasks.TaskFiles.TrainFile);
    public string TestPath => Path.Combine(Directory, Tasks.TaskFiles.TestFile);
    public string InfoPath => Path.Combine(Directory, Tasks.TaskFiles.InfoFile);
}
