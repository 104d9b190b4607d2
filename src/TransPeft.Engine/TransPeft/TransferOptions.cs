using TransPeft.Engine.IO;

namespace TransPeft.Engine.TransPeft;

/// <summary>Optional settings of <see cref="AdapterTransfer.Transfer"/>.</summary>
public sealed record TransferOptions
{
    /// <summary>The old base's folder, to compare architectures field by field; by default the adapter's
    /// base_model_name_or_path when that is a local folder with a config.json.</summary>
    public string? OldBaseDir { get; init; }
    /// <summary>The base_model_name_or_path written into the transferred adapter (default: the new base's full path).</summary>
    public string? BaseModelName { get; init; }
    /// <summary>Where the merged model goes (default: &lt;outDir&gt;/merged).</summary>
    public string? MergedDir { get; init; }
    /// <summary>On-disk dtype of the merged model.</summary>
    public SafetensorsDType MergedDType { get; init; } = SafetensorsDType.F32;
}
