namespace TransPeft.Engine.TransPeft;

/// <summary>What a transfer wrote: the retargeted adapter folder, and the merged model folder when merging.</summary>
public sealed record TransferResult(TransferReport Report, string AdapterDir, string? MergedModelDir);
