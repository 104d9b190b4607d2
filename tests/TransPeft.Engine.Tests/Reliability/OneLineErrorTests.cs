using TransPeft.Engine.Evaluation;
using TransPeft.Engine.IO;
using TransPeft.Engine.Model;
using TransPeft.Engine.Tests.Cli;
using TransPeft.Engine.Tests.IO;
using TransPeft.Engine.Tests.Support;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>Hostile JSON and special files fail with one line that names the file (and the line or field).</summary>
public sealed class OneLineErrorTests : IDisposable
{
    private readonly TempDir _dir = new();
    public void Dispose() => _dir.Dispose();

    private static readonly DatasetTokenizer Tok = new(Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2"), "tiktoken:gpt2", 50256);

    private static T OneLine<T>(Func<object?> action, params string[] mentions) where T : Exception
    {
        var e = Assert.Throws<T>(() => { action(); });
        foreach (var m in mentions) Assert.Contains(m, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        return e;
    }

    [Fact]
    public void ADuplicateKeyInARecordOrAConfigNamesTheFile()
    {
        var data = _dir.File("dup.jsonl");
        File.WriteAllText(data, "{\"text\": \"a\"}\n{\"text\": \"b\", \"text\": \"c\"}\n");
        OneLine<DatasetFormatException>(() => DatasetLoader.Load(data, DatasetFormat.TextRecords, Tok, 16), data, "line 2");
        var config = _dir.File("train.json");
        File.WriteAllText(config, """{ "lora_r": 4, "lora_r": 8 }""");
        OneLine<TrainingConfigException>(() => TrainingOptionsJson.Load(config), config, "repeated keys");
        var eval = _dir.File("eval.jsonl");
        File.WriteAllText(eval, "{\"prompt\": \"a\", \"prompt\": \"b\", \"completion\": \"c\"}\n");
        OneLine<EvalDataException>(() => EvalDataset.LoadJsonl(eval), eval);
    }

    [Fact]
    public void ALoneSurrogateInTextNamesFileLineAndField()
    {
        var data = _dir.File("surrogate.jsonl");
        File.WriteAllText(data, "{\"text\": \"fine\"}\n{\"text\": \"bad \\ud800 here\"}\n");
        OneLine<DatasetFormatException>(() => DatasetLoader.Load(data, DatasetFormat.TextRecords, Tok, 16), data, "line 2", "$.text", "surrogate");
        var pc = _dir.File("pc.jsonl");
        File.WriteAllText(pc, "{\"prompt\": \"ok\", \"completion\": \"\\udfff\"}\n");
        OneLine<DatasetFormatException>(() => DatasetLoader.Load(pc, DatasetFormat.PromptCompletion, Tok, 16), pc, "line 1", "$.completion");
    }

    [Fact]
    public void ASpecialFileIsRefusedAsDataConfigOrTokenizer()
    {
        if (!OperatingSystem.IsLinux()) return;
        OneLine<InputFileException>(() => DatasetLoader.Load("/dev/zero", DatasetFormat.Text, Tok, 16), "/dev/zero", "not a regular file");
        var model = _dir.Sub("model");
        File.CreateSymbolicLink(Path.Combine(model, "config.json"), "/dev/zero");
        OneLine<InputFileException>(() => ModelConfig.Load(model), "config.json", "not a regular file");
        OneLine<InputFileException>(() => TrainingOptionsJson.Load("/dev/zero"), "/dev/zero");
    }

    [Fact]
    public void TheCliPrintsOneLineForMalformedConfigJson()
    {
        var root = TpeftProcess.TempDir();
        var model = CliFixtures.ModelWithTokenizer(root);
        var cfg = Path.Combine(model, "config.json");
        var good = File.ReadAllText(cfg);
        foreach (var broken in new[]
        {
            "{\"model_type\": \"llama\", \"hidden_size\": }",
            good.Replace("\"hidden_size\"", "\"hidden_size\": 8, \"hidden_size\""),
            new string('[', 5000) + new string(']', 5000),
            good.Replace("\"vocab_size\":", "\"vocab_size\": \"\\ud800\", \"x\":"),
            "\u0000\u0001",
        })
        {
            File.WriteAllText(cfg, broken);
            var error = CliAssert.OneErrorLine(TpeftProcess.Run("inspect", model));
            Assert.Contains(cfg, error);
        }
        Assert.Equal("a b c", global::TransPeft.Cli.CliErrors.OneLine("a\n  b\r\nc\n"));
    }
}
