namespace TransPeft.Experiments.Data.Tasks;

/// <summary>A task's description and its train and test records.</summary>
public sealed record BuiltTask(TaskInfo Info, IReadOnlyList<TaskRecord> Train, IReadOnlyList<TaskRecord> Test);
