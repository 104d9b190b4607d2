namespace TransPeft.Experiments;

/// <summary>What the paired comparison of Trans-PEFT transfer with direct transfer says (95% t-interval over seeds).</summary>
public enum TransferOutcome
{
    /// <summary>The interval of (Trans-PEFT − Direct) lies entirely on the better side of 0.</summary>
    Helps,
    /// <summary>The interval contains 0.</summary>
    NoSignificantEffect,
    /// <summary>The interval lies entirely on the worse side of 0.</summary>
    Hurts,
}
