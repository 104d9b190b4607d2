using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;

namespace TransPeft.Engine.Tests.Api;

/// <summary>
/// The engine is embedded in hosts' processes: it must start no process, read no environment variable and
/// never go looking for files it was not given. These read the compiled engine assembly's metadata, so a
/// call slipped in anywhere (even in code no test runs) fails here.
/// </summary>
public sealed class LayeringTests
{
    private static (HashSet<string> Types, HashSet<string> Members) References()
    {
        var path = typeof(global::TransPeft.Engine.Model.ModelConfig).Assembly.Location;
        using var pe = new PEReader(File.OpenRead(path));
        var md = pe.GetMetadataReader();
        var types = new HashSet<string>(StringComparer.Ordinal);
        foreach (var h in md.TypeReferences)
        {
            var t = md.GetTypeReference(h);
            types.Add($"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}");
        }
        var members = new HashSet<string>(StringComparer.Ordinal);
        foreach (var h in md.MemberReferences)
        {
            var m = md.GetMemberReference(h);
            if (m.Parent.Kind != HandleKind.TypeReference) continue;
            var t = md.GetTypeReference((TypeReferenceHandle)m.Parent);
            members.Add($"{md.GetString(t.Namespace)}.{md.GetString(t.Name)}.{md.GetString(m.Name)}");
        }
        return (types, members);
    }

    [Fact]
    public void Engine_starts_no_process()
    {
        var (types, _) = References();
        Assert.DoesNotContain("System.Diagnostics.Process", types);
        Assert.DoesNotContain("System.Diagnostics.ProcessStartInfo", types);
    }

    [Fact]
    public void Engine_reads_no_environment_variable_and_walks_no_parent_folders()
    {
        var (_, members) = References();
        Assert.DoesNotContain("System.Environment.GetEnvironmentVariable", members);
        Assert.DoesNotContain("System.Environment.GetEnvironmentVariables", members);
        Assert.DoesNotContain("System.Environment.get_CurrentDirectory", members);
        Assert.DoesNotContain("System.IO.Directory.GetParent", members);
        Assert.DoesNotContain("System.IO.Directory.GetCurrentDirectory", members);
        Assert.DoesNotContain("System.IO.DirectoryInfo.get_Parent", members);
    }

    [Fact]
    public void Experiment_data_code_is_not_in_the_engine()
    {
        var engine = typeof(global::TransPeft.Engine.Model.ModelConfig).Assembly;
        Assert.DoesNotContain(engine.GetTypes(), t => t.Namespace?.Contains(".Data", StringComparison.Ordinal) == true);
        // The compact GPT-2 tokenizer is a model-folder format (tpeft_tokenizer.json), so it stays in the engine.
        Assert.Equal(engine, typeof(global::TransPeft.Engine.Text.CompactGpt2Tokenizer).Assembly);
    }
}
