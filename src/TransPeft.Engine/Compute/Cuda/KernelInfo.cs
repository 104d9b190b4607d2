namespace TransPeft.Engine.Compute.Cuda;

/// <summary>A kernel's symbol, the source file that defines it, and its parameter types in order.</summary>
internal sealed record KernelInfo(KernelId Id, string Name, string File, ArgKind[] Parameters)
{
    public override string ToString() => $"{Name}({string.Join(", ", Parameters)}) in {File}";
}
