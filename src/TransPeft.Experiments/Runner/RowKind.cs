namespace TransPeft.Experiments;

/// <summary>The rows of the transfer protocol (TRANS-PEFT.md), plus each Trans-PEFT adapter on its own base.</summary>
public enum RowKind
{
    /// <summary>Plain LoRA trained on v1, evaluated on v1.</summary>
    FineTuneOld,
    /// <summary>Plain LoRA trained on v1, loaded onto v2 unchanged.</summary>
    DirectTransfer,
    /// <summary>Trans-PEFT LoRA trained on v1, loaded onto v2 unchanged.</summary>
    TransPeftTransfer,
    /// <summary>Trans-PEFT LoRA trained on v1, evaluated on v1 (what the perturbation costs before any transfer).</summary>
    TransPeftOnOld,
    /// <summary>Plain LoRA trained on v2, evaluated on v2: the reference.</summary>
    RetuneNew,
}
