namespace TransPeft.Engine.Inference;

/// <summary>Why a request ended.</summary>
public enum BatchFinish
{
    /// <summary>It produced its maximum number of tokens.</summary>
    Length,
    /// <summary>It produced a stop token (delivered as its last token).</summary>
    Stop,
    Cancelled,
    /// <summary>The step function threw; <see cref="BatchRequest{TSequence}.Completion"/> carries the exception.</summary>
    Failed,
}
