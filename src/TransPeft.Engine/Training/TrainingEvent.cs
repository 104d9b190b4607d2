namespace TransPeft.Engine.Training;

/// <summary>What a <see cref="TrainingProgress"/> report announces.</summary>
public enum TrainingEvent
{
    Started, Step, Evaluation, Checkpoint, Finished, Interrupted,
    /// <summary>The output folder's lock was left by a run that no longer runs (kill -9); this run took it over. Message says whose.</summary>
    StaleLockTakenOver,
}
