namespace TransPeft.Engine.Training;

/// <summary>Learning-rate shape after the linear warmup (see <see cref="LearningRateSchedule"/>).</summary>
public enum ScheduleKind { Constant, Linear, Cosine }
