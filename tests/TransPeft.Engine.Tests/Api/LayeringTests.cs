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

    /// <summary>
    /// The CLI, the benchmarks and the experiment are clients of the public API (docs/API.md): the engine, the
    /// experiment project and the CLI open their internals to the tests alone, so a client reaching for an internal
    /// does not compile.
    /// </summary>
    [Fact]
    public void Only_the_tests_see_internals()
    {
        var assemblies = new[]
        {
            typeof(global::TransPeft.Engine.Model.ModelConfig).Assembly,
            typeof(global::TransPeft.Experiments.ExperimentRunner).Assembly,
            typeof(global::TransPeft.Cli.Commands.TrainCommand).Assembly,
        };
        foreach (var assembly in assemblies)
        {
            var friends = assembly.GetCustomAttributes(typeof(System.Runtime.CompilerServices.InternalsVisibleToAttribute), false)
                .Cast<System.Runtime.CompilerServices.InternalsVisibleToAttribute>().Select(a => a.AssemblyName);
            Assert.Equal(["TransPeft.Engine.Tests"], friends);
        }
    }
}
