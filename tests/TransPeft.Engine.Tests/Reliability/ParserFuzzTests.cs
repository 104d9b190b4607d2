using System.Diagnostics;
using System.Text;
using CsCheck;
using TransPeft.Engine.IO;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;
using Xunit.Abstractions;

namespace TransPeft.Engine.Tests.Reliability;

/// <summary>
/// Fuzzing of every parser of untrusted files, in CI: each target takes mutants of its seed corpus
/// (tests/FuzzSeeds/TARGET/) and must either accept the input or refuse it with one of the engine's named error
/// types (<see cref="EngineErrors.Named"/>), within <see cref="PerInputLimit"/>. Anything else (an
/// InvalidOperationException, an IndexOutOfRangeException, a hang) is a bug and fails the test with the input.
/// CsCheck drives the generation; a fixed total of executions keeps the run bounded (see docs/RELIABILITY.md).
/// </summary>
public sealed class ParserFuzzTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Executions per target: 5 targets x 4,000 = 20,000 per `./build.sh test`.</summary>
    public const int ExecutionsPerTarget = 4_000;
    public static readonly TimeSpan PerInputLimit = TimeSpan.FromSeconds(1);

    private readonly string _dir = Support.TpeftProcess.TempDir();
    public void Dispose() { try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } }

    private static readonly DatasetTokenizer Gpt2 = new(Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2"), "tiktoken:gpt2", 50256);
    private static readonly ModelConfig LlamaConfig = ModelConfig.Load(Path.Combine(AppContext.BaseDirectory, "FuzzSeeds", "config", "llama.json"));

    /// <summary>Each target writes the input where its parser expects a file and runs the parser as the CLI would.</summary>
    private void Run(string target, byte[] input)
    {
        switch (target)
        {
            case "safetensors":
            {
                var path = Path.Combine(_dir, "model.safetensors");
                File.WriteAllBytes(path, input);
                using var r = SafetensorsReader.Open(path);
                foreach (var name in r.Names)
                    if (r.GetInfo(name).DType is SafetensorsDType.F32 or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F64) r.ReadFloat32(name);
                break;
            }
            case "config":
            {
                var path = Path.Combine(_dir, "config.json");
                File.WriteAllBytes(path, input);
                var c = ModelConfig.Load(path);
                c.ParameterCount();
                break;
            }
            case "adapter_config":
            {
                var dir = Path.Combine(_dir, "adapter");
                var weights = Path.Combine(dir, LoraAdapter.WeightsFileName);
                if (!File.Exists(weights))
                {
                    Directory.CreateDirectory(dir);
                    File.Copy(Path.Combine(AppContext.BaseDirectory, "Fixtures", "llama-mha", "adapter", LoraAdapter.WeightsFileName), weights);
                }
                File.WriteAllBytes(Path.Combine(dir, LoraAdapter.ConfigFileName), input);
                LoraAdapter.Load(dir, LlamaConfig);
                break;
            }
            case "tokenizer":
            {
                var path = Path.Combine(_dir, "tokenizer.json");
                File.WriteAllBytes(path, input);
                var tok = HfTokenizerJson.Load(path).Tokenizer;
                tok.Decode(tok.EncodeToIds("abcd ab, cd! 12 <|eot|> ü"));
                break;
            }
            case "jsonl":
            {
                var path = Path.Combine(_dir, "data.jsonl");
                File.WriteAllBytes(path, input);
                DatasetLoader.Load(path, DatasetFormat.Auto, Gpt2, 16, vocabSize: 50257);
                break;
            }
            case "training_config":
            {
                var path = Path.Combine(_dir, "train.json");
                File.WriteAllBytes(path, input);
                TrainingOptionsJson.Load(path).Validate();
                break;
            }
            default: throw new ArgumentException(target);
        }
    }

    public static TheoryData<string> Targets => new() { "safetensors", "config", "adapter_config", "tokenizer", "jsonl", "training_config" };

    private static byte[][] Seeds(string target) =>
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "FuzzSeeds", target)).Order(StringComparer.Ordinal).Select(File.ReadAllBytes).ToArray();

    /// <summary>
    /// Wall-clock cap for one target: on a loaded machine the run stops early (and says how far it got) rather
    /// than stretching `./build.sh test`; six targets stay within three minutes.
    /// </summary>
    public static readonly TimeSpan PerTargetBudget = TimeSpan.FromSeconds(30);

    /// <summary>Runs one input; returns null when the outcome is allowed, else what went wrong.</summary>
    private string? Verdict(string target, byte[] input)
    {
        var elapsed = Timed(target, input, out var problem);
        if (problem is not null) return problem;
        // A shared machine can stall any one call; an input is slow only when a second run is slow too.
        if (elapsed > PerInputLimit && Timed(target, input, out _) is var again && again > PerInputLimit)
            return $"took {elapsed.TotalSeconds:0.00} s, then {again.TotalSeconds:0.00} s";
        return null;
    }

    private TimeSpan Timed(string target, byte[] input, out string? problem)
    {
        problem = null;
        var clock = Stopwatch.StartNew();
        try { Run(target, input); }
        catch (Exception e) when (EngineErrors.IsNamed(e))
        {
            if (e.Message.Contains('\n')) problem = $"{e.GetType().Name} with a multi-line message: {e.Message}";
        }
        catch (Exception e) { problem = $"{e.GetType().FullName}: {e.Message}\n{e.StackTrace}"; }
        return clock.Elapsed;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void EverySeedIsHandled(string target)
    {
        foreach (var seed in Seeds(target))
            Assert.Null(Verdict(target, seed));
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void MutantsOfTheSeedsFailOnlyWithNamedErrors(string target)
    {
        var seeds = Seeds(target);
        var clock = Stopwatch.StartNew();
        int executions = 0, planned = target == "training_config" ? ExecutionsPerTarget / 4 : ExecutionsPerTarget;
        var gen = Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Int).Select((i, s) => Mutator.Mutate(seeds[i], s));
        gen.Sample(input =>
        {
            if (clock.Elapsed > PerTargetBudget) return;
            Interlocked.Increment(ref executions);
            if (Verdict(target, input) is { } problem)
                throw new Exception($"{target}: {problem} [input, base64: {Convert.ToBase64String(input)}]");
        }, iter: planned, threads: 1, seed: Environment.GetEnvironmentVariable("TPEFT_FUZZ_SEED"));
        output.WriteLine($"{target}: {executions} executions in {clock.Elapsed.TotalSeconds:0.0} s"
            + (executions < planned ? $" (stopped at the {PerTargetBudget.TotalSeconds:0} s budget of {planned})" : ""));
    }
}

/// <summary>
/// Structure-aware byte mutations for JSON-ish inputs: flips, deletions, duplications, truncation, and splices of
/// tokens that break parsers (huge numbers, unpaired surrogates, deep nesting, repeated keys). Deterministic in its seed.
/// </summary>
internal static class Mutator
{
    private static readonly string[] Tokens =
    [
        "-1", "0", "1e309", "-1e309", "NaN", "1.5", "4294967296", "9223372036854775808", "2147483648", "-2147483649",
        "\"\\ud800\"", "\"\\udc00x\"", "null", "true", "[]", "{}", "\"\"", "\"F32\"", "\"BF16\"", "\"I64\"", "\"BOOL\"",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "{\"a\":1,\"a\":2}", "\"__metadata__\"",
        "\"data_offsets\"", "\"shape\"", "\"dtype\"", "\"vocab_size\"", "\"hidden_size\"", "\"target_modules\"", "\"r\"",
        "\"input_ids\"", "\"labels\"", "\"text\"", "\"prompt\"", "\"pattern\"", "\"Regex\"", "\"(a+)+$\"", "\"(?=a)\"", "\"[\"",
        "\"merges\"", "\"vocab\"", "\"added_tokens\"", "\"type\"", "\"Sequence\"", "\"Split\"", "\n", "\r\n", ",", ":", "\u00ff", "\0",
    ];

    public static byte[] Mutate(byte[] seed, int s)
    {
        var rng = new Random(s);
        var data = new List<byte>(seed);
        int count = 1 + rng.Next(4);
        for (int k = 0; k < count; k++)
        {
            // Headers and keys sit near the start of most files: bias half of the edits there.
            int Pos(int size) => size <= 0 ? 0 : rng.Next(2) == 0 ? rng.Next(Math.Min(size, 512)) : rng.Next(size);
            int n = data.Count;
            switch (rng.Next(7))
            {
                case 0: if (n > 0) data[Pos(n)] ^= (byte)(1 << rng.Next(8)); break;
                case 1: if (n > 0) { int p = Pos(n); data.RemoveRange(p, Math.Min(1 + rng.Next(16), n - p)); } break;
                case 2: data.InsertRange(Pos(n + 1), Encoding.UTF8.GetBytes(Tokens[rng.Next(Tokens.Length)])); break;
                case 3: if (n > 1) data.RemoveAt(rng.Next(n)); break;
                case 4: if (n > 0) { int cut = rng.Next(n); data.RemoveRange(cut, n - cut); } break; // truncate
                case 5: if (n > 2) { int from = rng.Next(n), len = Math.Min(1 + rng.Next(64), n - from); data.InsertRange(Pos(n + 1), data.GetRange(from, len)); } break;
                default: ReplaceNumber(data, rng); break;
            }
        }
        return [.. data];
    }

    /// <summary>Replaces one run of ASCII digits with a boundary value.</summary>
    private static void ReplaceNumber(List<byte> data, Random rng)
    {
        var starts = new List<int>();
        for (int i = 0; i < data.Count; i++) if (char.IsAsciiDigit((char)data[i]) && (i == 0 || !char.IsAsciiDigit((char)data[i - 1]))) starts.Add(i);
        if (starts.Count == 0) return;
        int at = starts[rng.Next(starts.Count)], end = at;
        while (end < data.Count && char.IsAsciiDigit((char)data[end])) end++;
        string[] values = ["0", "1", "3", "7", "65535", "65536", "2147483647", "2147483648", "4294967295", "99999999999999999999", "1e9"];
        data.RemoveRange(at, end - at);
        data.InsertRange(at, Encoding.UTF8.GetBytes(values[rng.Next(values.Length)]));
    }
}
