namespace TransPeft.Cuda.Compile;

/// <summary>What ptxas -v said about one function (null where it said nothing).</summary>
internal sealed record PtxasFunctionReport
{
    public int? Registers { get; init; }
    public int? SharedBytes { get; init; }
    public int? StackFrameBytes { get; init; }
    public int? SpillStoreBytes { get; init; }
    public int? SpillLoadBytes { get; init; }
}
