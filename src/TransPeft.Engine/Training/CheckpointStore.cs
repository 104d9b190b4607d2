using System.Globalization;
using TransPeft.Engine.IO;

namespace TransPeft.Engine.Training;

/// <summary>
/// The checkpoints of one output folder: <c>OUT/checkpoints/step-00000050/</c>, each holding
/// <c>weights/</c> (the trainable weights: a PEFT adapter, a full model, or trainable.safetensors),
/// <c>optimizer.safetensors</c> and <c>trainer_state.json</c>. Every checkpoint is written atomically
/// (see <see cref="AtomicDirectory"/>), so a listed checkpoint is always complete.
/// </summary>
internal sealed class CheckpointStore(string outDir)
{
    public const string WeightsDir = "weights";
    public const string OptimizerFile = "optimizer.safetensors";
    private const string Prefix = "step-";

    public string Root { get; } = Path.Combine(outDir, "checkpoints");

    public string PathOf(int step) => Path.Combine(Root, $"{Prefix}{step:D8}");

    /// <summary>Complete checkpoints, oldest first.</summary>
    public IReadOnlyList<(int Step, string Path)> List()
    {
        if (!Directory.Exists(Root)) return [];
        var list = new List<(int, string)>();
        foreach (var d in Directory.GetDirectories(Root, Prefix + "*"))
        {
            var name = Path.GetFileName(d);
            if (int.TryParse(name.AsSpan(Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out int step)
                && File.Exists(Path.Combine(d, TrainerState.FileName)))
                list.Add((step, d));
        }
        return list.OrderBy(x => x.Item1).ToList();
    }

    public string? Latest() => List() is { Count: > 0 } l ? l[^1].Path : null;

    /// <summary>Writes checkpoint <paramref name="step"/> atomically; <paramref name="fill"/> writes into a temporary folder.</summary>
    public string Save(int step, Action<string> fill)
    {
        var path = PathOf(step);
        AtomicDirectory.Write(path, fill);
        return path;
    }

    /// <summary>Keeps the newest <paramref name="keep"/> checkpoints (0 = all).</summary>
    public void Prune(int keep)
    {
        if (keep <= 0) return;
        var list = List();
        for (int i = 0; i < list.Count - keep; i++) Directory.Delete(list[i].Path, recursive: true);
    }

    public void CleanPartials() => AtomicDirectory.CleanPartials(Root);

    /// <summary>A checkpoint folder itself, or an output folder (then its latest checkpoint).</summary>
    public static string Resolve(string checkpointOrOutDir)
    {
        if (File.Exists(Path.Combine(checkpointOrOutDir, TrainerState.FileName))) return checkpointOrOutDir;
        if (!Directory.Exists(checkpointOrOutDir)) throw new DirectoryNotFoundException($"{checkpointOrOutDir}: no such checkpoint or output folder");
        return new CheckpointStore(checkpointOrOutDir).Latest()
            ?? throw new FileNotFoundException($"{checkpointOrOutDir}: neither a checkpoint ({TrainerState.FileName}) nor an output folder with checkpoints/{Prefix}*");
    }
}
