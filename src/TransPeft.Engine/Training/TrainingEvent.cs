namespace TransPeft.Engine.Training;

/// <summary>What a <see cref="TrainingProgress"/> report announces.</summary>
public enum TrainingEvent { Started, Step, Evaluation, Checkpoint, Finished, Interrupted }
