using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Tests.Support;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>
/// The Hugging Face cache stores every file of a snapshot as a symlink into blobs/:
/// <c>snapshots/REV/model.safetensors -> ../../blobs/SHA</c>. Readers follow links and take the target's size.
/// </summary>
public sealed class SymlinkTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    /// <summary>Moves every file of <paramref name="folder"/> into blobs/ and leaves relative links in a snapshot folder, as huggingface_hub does.</summary>
    private string AsHfCacheSnapshot(string folder)
    {
        var repo = _dir.Sub("models--org--" + Path.GetFileName(folder));
        var blobs = Path.Combine(repo, "blobs");
        var snapshot = Path.Combine(repo, "snapshots", "0123abcd");
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snapshot);
        int n = 0;
        foreach (var f in Directory.GetFiles(folder))
        {
            var blob = Path.Combine(blobs, $"sha{n++:D4}");
            File.Move(f, blob);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(f)), Path.Combine("..", "..", "blobs", Path.GetFileName(blob)));
        }
        return snapshot;
    }

    [Fact]
    public void AModelAndAnAdapterLoadFromAHfCacheSnapshotOfLinks()
    {
        if (OperatingSystem.IsWindows()) return; // symlinks need a privilege there
        var model = TinyModels.Model();
        var modelDir = _dir.Sub("model");
        model.Save(modelDir);
        var adapterDir = _dir.Sub("adapter");
        TinyModels.TrainedAdapter(model.Config).Save(adapterDir);

        var loaded = TransformerModel.Load(AsHfCacheSnapshot(modelDir));
        Assert.Equal(model.ParameterCount, loaded.ParameterCount);
        var adapter = LoraAdapter.Load(AsHfCacheSnapshot(adapterDir), model.Config);
        Assert.Equal(TinyModels.TrainedAdapter(model.Config).ModuleCount, adapter.ModuleCount);
    }

    [Fact]
    public void ATruncatedTargetBehindALongLinkNameIsRefused()
    {
        if (OperatingSystem.IsWindows()) return;
        var full = _dir.File("full.safetensors");
        new SafetensorsWriter().AddFloat("w", new float[64], [64]).Save(full);
        var bytes = File.ReadAllBytes(full);
        // The target keeps its header but loses 200 bytes of data. The link's own size is the length of the path it
        // holds, made exactly the complete file's size here: only the target's size shows the truncation.
        int dots = (bytes.Length - 100) / 2;
        var targetName = new string('t', bytes.Length - 2 * dots);
        File.WriteAllBytes(_dir.File(targetName), bytes[..(bytes.Length - 200)]);
        var link = _dir.File("model.safetensors");
        File.CreateSymbolicLink(link, string.Concat(Enumerable.Repeat("./", dots)) + targetName);
        Assert.Equal(bytes.Length, new FileInfo(link).Length);
        var e = Assert.Throws<SafetensorsFormatException>(() => SafetensorsReader.Open(link));
        Assert.Contains(link, e.Message);
    }

    [Fact]
    public void ALinkToADeviceIsRefusedInOneLine()
    {
        if (!OperatingSystem.IsLinux()) return;
        var link = _dir.File("model.safetensors");
        File.CreateSymbolicLink(link, "/dev/zero");
        var e = Assert.Throws<InputFileException>(() => SafetensorsReader.Open(link));
        Assert.Contains(link, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
