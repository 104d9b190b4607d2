using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Training;

public class DatasetTests
{
    private const int Eos = 50256; // GPT-2 <|endoftext|>
    private static readonly Tokenizer Gpt2 = TiktokenTokenizer.CreateForModel("gpt2");
    private static readonly DatasetTokenizer Tok = new(Gpt2, "tiktoken:gpt2", Eos);

    private static string TempDir() => TempDirs.Create("tpeft-data");

    private static string Write(string dir, string name, string content)
    {
        var p = Path.Combine(dir, name);
        File.WriteAllText(p, content);
        return p;
    }

    private static int[] Enc(string s) => [.. Gpt2.EncodeToIds(s)];

    [Fact]
    public void Prompt_completion_counts_only_the_completion_and_its_eos()
    {
        var path = Write(TempDir(), "pc.jsonl", """
            {"prompt": "What is 2+2?", "completion": " 4"}
            {"prompt": "Say hi.", "completion": " Hello there"}
            """);
        var (ds, report) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, seqLen: 64);
        Assert.Equal(DatasetFormat.PromptCompletion, report.Format);
        Assert.Equal(2, ds.Count);
        int[] p = Enc("Say hi."), c = Enc(" Hello there");
        Assert.Equal([.. p, .. c, Eos], ds.IdsOf(1).ToArray());
        Assert.Equal([.. Enumerable.Repeat(TokenBatch.IgnoreIndex, p.Length), .. c, Eos], ds.LabelsOf(1).ToArray());
        Assert.Equal(c.Length + 1 + Enc(" 4").Length + 1, report.Targets);
        Assert.False(report.Packed);
    }

    [Fact]
    public void Alpaca_uses_the_standard_template_with_and_without_input()
    {
        Assert.Equal(
            "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n2 and 3\n\n### Response:",
            AlpacaTemplate.Prompt("Add.", "2 and 3"));
        Assert.Equal(
            "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nGreet.\n\n### Response:",
            AlpacaTemplate.Prompt("Greet.", ""));

        var path = Write(TempDir(), "alpaca.jsonl", """
            {"instruction": "Add.", "input": "2 and 3", "output": "5"}
            {"instruction": "Greet.", "input": "", "output": "Hi!"}
            {"instruction": "Greet again.", "output": "Hello!"}
            """);
        var (ds, report) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 256);
        Assert.Equal(DatasetFormat.Alpaca, report.Format);
        for (int i = 0; i < 3; i++)
        {
            var ids = ds.IdsOf(i).ToArray();
            var labels = ds.LabelsOf(i).ToArray();
            int firstCounted = Array.FindIndex(labels, l => l != TokenBatch.IgnoreIndex);
            string prompt = Gpt2.Decode(ids[..firstCounted]);
            string answer = Gpt2.Decode(labels[firstCounted..]);
            Assert.StartsWith("Below is an instruction", prompt);
            Assert.EndsWith("### Response:", prompt);
            Assert.Equal(new[] { "5", "Hi!", "Hello!" }[i] + "<|endoftext|>", answer);
            Assert.Equal(i == 0, prompt.Contains("### Input:"));
        }
    }

    [Fact]
    public void Pretokenized_records_keep_hf_labels_and_drop_masked_positions()
    {
        var path = Write(TempDir(), "tok.jsonl", """
            {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}
            {"input_ids": [1, 2, 3]}
            {"input_ids": [9, 10, 11, 0, 0], "labels": [-100, 10, 11, -100, -100], "attention_mask": [1, 1, 1, 0, 0]}
            """);
        var (ds, report) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 16);
        Assert.Equal(DatasetFormat.Tokenized, report.Format);
        Assert.Equal([5, 6, 7, 8], ds.IdsOf(0).ToArray());
        Assert.Equal([-100, -100, 7, 8], ds.LabelsOf(0).ToArray());
        Assert.Equal([1, 2, 3], ds.LabelsOf(1).ToArray()); // labels default to the ids, nothing added
        Assert.Equal([9, 10, 11], ds.IdsOf(2).ToArray());
        Assert.Equal([-100, 10, 11], ds.LabelsOf(2).ToArray());
        Assert.Equal(2 + 2 + 2, report.Targets); // position 0 never counts (the shift)
    }

    [Fact]
    public void Text_records_make_every_token_a_target_with_bos_and_eos()
    {
        var path = Write(TempDir(), "t.jsonl", "{\"text\": \"The cat sat.\"}\n\n{\"text\": \"Dogs run.\"}\n");
        var tok = Tok with { BosId = 1 };
        var (ds, report) = DatasetLoader.Load(path, DatasetFormat.Auto, tok, 64, pack: false);
        Assert.Equal(DatasetFormat.TextRecords, report.Format);
        Assert.Equal([1, .. Enc("The cat sat."), Eos], ds.IdsOf(0).ToArray());
        Assert.Equal(ds.IdsOf(1).ToArray(), ds.LabelsOf(1).ToArray());
    }

    [Fact]
    public void Plain_text_is_packed_into_full_sequences_and_the_stream_is_kept_whole()
    {
        var text = string.Join("\n\n", Enumerable.Range(0, 30).Select(i => $"Paragraph {i} talks about item number {i * 7}."));
        var path = Write(TempDir(), "corpus.txt", text);
        var (ds, report) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, seqLen: 16);
        Assert.Equal(DatasetFormat.Text, report.Format);
        Assert.True(report.Packed);
        int[] all = [.. Enc(text), Eos];
        Assert.Equal((all.Length + 15) / 16, ds.Count);
        for (int i = 0; i < ds.Count - 1; i++) Assert.Equal(16, ds.LengthOf(i));
        Assert.Equal(all, Enumerable.Range(0, ds.Count).SelectMany(i => ds.IdsOf(i).ToArray()).ToArray());
        Assert.Equal(all, Enumerable.Range(0, ds.Count).SelectMany(i => ds.LabelsOf(i).ToArray()).ToArray());
    }

    [Fact]
    public void Packing_records_concatenates_examples_with_their_label_masks()
    {
        var path = Write(TempDir(), "tok.jsonl", """
            {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}
            {"input_ids": [4, 5, 6, 7], "labels": [-100, -100, 6, 7]}
            """);
        var (ds, _) = DatasetLoader.Load(path, DatasetFormat.Tokenized, Tok, 4, pack: true);
        Assert.Equal(2, ds.Count);
        Assert.Equal([1, 2, 3, 4], ds.IdsOf(0).ToArray());
        Assert.Equal([-100, 2, 3, -100], ds.LabelsOf(0).ToArray());
        Assert.Equal([5, 6, 7], ds.IdsOf(1).ToArray());
        Assert.Equal([-100, 6, 7], ds.LabelsOf(1).ToArray());
    }

    [Fact]
    public void Long_examples_are_truncated_and_those_without_targets_are_skipped()
    {
        var longPrompt = string.Join(" ", Enumerable.Repeat("word", 40));
        var path = Write(TempDir(), "pc.jsonl",
            $"{{\"prompt\": \"{longPrompt}\", \"completion\": \" done\"}}\n{{\"prompt\": \"Q\", \"completion\": \" a b c d e f g h i j k l m n o p\"}}\n");
        var (ds, report) = DatasetLoader.Load(path, DatasetFormat.PromptCompletion, Tok, 8);
        Assert.Equal(1, report.Skipped);    // the prompt fills all 8 positions: nothing left to learn
        Assert.Equal(2, report.Truncated);
        Assert.Equal(1, ds.Count);
        Assert.Equal(8, ds.LengthOf(0));
    }

    [Fact]
    public void Corrupt_jsonl_line_is_reported_with_file_and_line()
    {
        var dir = TempDir();
        var path = Write(dir, "bad.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n\n{\"prompt\": \"c\", \"completion\": \n");
        var e = Assert.Throws<DatasetFormatException>(() => DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32));
        Assert.Contains($"{path}:line 3", e.Message);
        Assert.Contains("not valid JSON", e.Message);

        var path2 = Write(dir, "missing.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"c\"}\n");
        var e2 = Assert.Throws<DatasetFormatException>(() => DatasetLoader.Load(path2, DatasetFormat.PromptCompletion, Tok, 32));
        Assert.Contains($"{path2}:line 2", e2.Message);
        Assert.Contains("'completion' is missing", e2.Message);

        var path3 = Write(dir, "type.jsonl", "{\"input_ids\": [1, 2, \"x\"]}\n");
        var e3 = Assert.Throws<DatasetFormatException>(() => DatasetLoader.Load(path3, DatasetFormat.Auto, Tok, 32));
        Assert.Contains($"{path3}:line 1", e3.Message);
        Assert.Contains("'input_ids'[2]: expected an integer", e3.Message);

        var path4 = Write(dir, "labels.jsonl", "{\"input_ids\": [1, 2, 3], \"labels\": [1, -5, 3]}\n");
        var e4 = Assert.Throws<DatasetFormatException>(() => DatasetLoader.Load(path4, DatasetFormat.Auto, Tok, 32));
        Assert.Contains("'labels'[1]: expected a token id >= 0 or -100, got -5", e4.Message);

        var path5 = Write(dir, "array.jsonl", "[1, 2]\n");
        var e5 = Assert.Throws<DatasetFormatException>(() => DatasetLoader.Load(path5, DatasetFormat.Tokenized, Tok, 32));
        Assert.Contains("record 0", e5.Message);
    }

    [Fact]
    public void Unknown_record_shape_names_the_expected_fields()
    {
        var path = Write(TempDir(), "odd.jsonl", "{\"question\": \"a\", \"answer\": \"b\"}\n");
        var e = Assert.Throws<DatasetFormatException>(() => DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32));
        Assert.Contains("line 1", e.Message);
        Assert.Contains("question, answer", e.Message);
        Assert.Contains("\"prompt\",\"completion\"", e.Message);
    }

    [Fact]
    public void A_json_array_file_like_alpaca_data_json_is_read()
    {
        var path = Write(TempDir(), "alpaca_data.json", """
            [
              {"instruction": "A", "input": "", "output": "x"},
              {"instruction": "B", "input": "", "output": "y"}
            ]
            """);
        var (ds, report) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 128);
        Assert.Equal(DatasetFormat.Alpaca, report.Format);
        Assert.Equal(2, ds.Count);
    }

    [Fact]
    public void Token_cache_hits_for_the_same_inputs_and_misses_when_any_changes()
    {
        var dir = TempDir();
        var cache = Path.Combine(dir, "cache");
        var path = Write(dir, "pc.jsonl", "{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"c\", \"completion\": \" d e\"}\n");
        var (first, r1) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32, cacheDir: cache);
        Assert.False(r1.FromCache);
        var files = Directory.GetFiles(cache);
        Assert.Single(files);
        Assert.DoesNotContain(Directory.GetFiles(cache, "*", SearchOption.AllDirectories), f => f.EndsWith(".tmp"));

        var (second, r2) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32, cacheDir: cache);
        Assert.True(r2.FromCache);
        Assert.Equal(first.Fingerprint, second.Fingerprint);
        for (int i = 0; i < first.Count; i++)
        {
            Assert.Equal(first.IdsOf(i).ToArray(), second.IdsOf(i).ToArray());
            Assert.Equal(first.LabelsOf(i).ToArray(), second.LabelsOf(i).ToArray());
        }

        Assert.False(DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 16, cacheDir: cache).Report.FromCache);           // seq_len
        Assert.False(DatasetLoader.Load(path, DatasetFormat.Auto, Tok with { Identity = "other" }, 32, cacheDir: cache).Report.FromCache); // tokenizer
        File.AppendAllText(path, "{\"prompt\": \"e\", \"completion\": \" f\"}\n");                                     // contents
        var (changed, r3) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32, cacheDir: cache);
        Assert.False(r3.FromCache);
        Assert.Equal(3, changed.Count);
        Assert.NotEqual(first.Fingerprint, changed.Fingerprint);
        Assert.True(DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32, cacheDir: cache).Report.FromCache);
    }

    [Fact]
    public void A_damaged_cache_file_is_rebuilt_not_trusted()
    {
        var dir = TempDir();
        var cache = Path.Combine(dir, "cache");
        var path = Write(dir, "t.jsonl", "{\"text\": \"hello world\"}\n");
        var (good, _) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32, cacheDir: cache);
        var file = Directory.GetFiles(cache).Single();
        File.WriteAllBytes(file, File.ReadAllBytes(file)[..20]);
        var (again, r) = DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32, cacheDir: cache);
        Assert.False(r.FromCache);
        Assert.Equal(good.IdsOf(0).ToArray(), again.IdsOf(0).ToArray());
        Assert.True(DatasetLoader.Load(path, DatasetFormat.Auto, Tok, 32, cacheDir: cache).Report.FromCache);
    }

    [Fact]
    public void Data_order_is_a_pure_function_of_seed_epoch_and_position()
    {
        var a = new DataOrder(50, seed: 7);
        var first = Enumerable.Range(0, 150).Select(p => a[p]).ToArray();
        var b = new DataOrder(50, seed: 7);
        var backwards = Enumerable.Range(0, 150).Reverse().Select(p => b[p]).Reverse().ToArray();
        Assert.Equal(first, backwards);                                           // access order does not matter
        for (int e = 0; e < 3; e++)
            Assert.Equal(Enumerable.Range(0, 50), first[(e * 50)..((e + 1) * 50)].Order()); // each epoch a permutation
        Assert.NotEqual(first[..50], first[50..100]);                             // epochs are reshuffled
        Assert.NotEqual(first[..50], Enumerable.Range(0, 50).ToArray());
        var other = new DataOrder(50, seed: 8);
        Assert.NotEqual(first[..50], Enumerable.Range(0, 50).Select(p => other[p]).ToArray());
        var plain = new DataOrder(5, 7, shuffle: false);
        Assert.Equal([0, 1, 2, 3, 4, 0, 1], Enumerable.Range(0, 7).Select(p => plain[p]).ToArray());
    }

    [Fact]
    public void Shuffle_draws_are_roughly_uniform()
    {
        // Position 0 over many seeds should hit each of 4 examples about a quarter of the time.
        var hits = new int[4];
        for (ulong s = 0; s < 4000; s++) hits[new DataOrder(4, s)[0]]++;
        Assert.All(hits, h => Assert.InRange(h, 880, 1120));
    }

    [Fact]
    public void Validation_split_is_deterministic_disjoint_and_complete()
    {
        var path = Write(TempDir(), "t.jsonl", string.Concat(Enumerable.Range(0, 40).Select(i => $"{{\"text\": \"record {i}\"}}\n")));
        var (all, _) = DatasetLoader.Load(path, DatasetFormat.TextRecords, Tok, 32, pack: false);
        var (train, val) = DatasetSplit.Split(all, 0.1, seed: 3);
        Assert.Equal(4, val.Count);
        Assert.Equal(36, train.Count);
        string Text(TokenizedDataset d, int i) => Gpt2.Decode(d.IdsOf(i).ToArray());
        var valTexts = Enumerable.Range(0, val.Count).Select(i => Text(val, i)).ToHashSet();
        var trainTexts = Enumerable.Range(0, train.Count).Select(i => Text(train, i)).ToHashSet();
        Assert.Empty(valTexts.Intersect(trainTexts));
        Assert.Equal(40, valTexts.Union(trainTexts).Count());
        var (_, val2) = DatasetSplit.Split(all, 0.1, seed: 3);
        Assert.Equal(valTexts, Enumerable.Range(0, val2.Count).Select(i => Text(val2, i)).ToHashSet());
        var (_, val3) = DatasetSplit.Split(all, 0.1, seed: 4);
        Assert.NotEqual(valTexts, Enumerable.Range(0, val3.Count).Select(i => Text(val3, i)).ToHashSet());
        Assert.NotEqual(train.Fingerprint, val.Fingerprint);
        Assert.Equal(1, DatasetSplit.ValidationCount(5, 0.01));
        Assert.Throws<ArgumentException>(() => DatasetSplit.Split(train.Subset([0], "one"), 0.5, 1));
    }

    [Fact]
    public void Micro_batches_pad_right_with_ignored_labels()
    {
        var path = Write(TempDir(), "tok.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [4, 5]}\n");
        var (ds, _) = DatasetLoader.Load(path, DatasetFormat.Tokenized, Tok with { PadId = 0 }, 8);
        var b = BatchBuilder.Build(ds, [1, 0], 8, padToSeqLen: false);
        Assert.Equal((2, 3), (b.BatchSize, b.SeqLen));
        Assert.Equal([4, 5, 0, 1, 2, 3], b.InputIds);
        Assert.Equal([4, 5, -100, 1, 2, 3], b.Labels);
        Assert.Equal(3, b.CountedTargets());
        var fixedLen = BatchBuilder.Build(ds, [0], 8, padToSeqLen: true);
        Assert.Equal(8, fixedLen.SeqLen);
        Assert.Equal([1, 2, 3, -100, -100, -100, -100, -100], fixedLen.Labels);
    }
}

public class TrainingDataLoadTests
{
    private static readonly DatasetTokenizer Tok = new(Microsoft.ML.Tokenizers.TiktokenTokenizer.CreateForModel("gpt2"), "tiktoken:gpt2", 50256);

    [Fact]
    public void Options_select_the_files_the_split_and_the_cache()
    {
        var dir = TempDirs.Create("tpeft-data");
        var train = Path.Combine(dir, "train.jsonl");
        File.WriteAllText(train, string.Concat(Enumerable.Range(0, 20).Select(i => $"{{\"prompt\": \"q{i}\", \"completion\": \" a{i}\"}}\n")));
        var valFile = Path.Combine(dir, "val.jsonl");
        File.WriteAllText(valFile, "{\"prompt\": \"x\", \"completion\": \" y\"}\n");
        var cache = Path.Combine(dir, "cache");

        var (split, report, none) = TrainingData.Load(new TrainingOptions { Data = train, ValFraction = 0.25, SeqLen = 32, CacheDir = cache }, Tok);
        Assert.Equal((15, 5), (split.Train.Count, split.Validation!.Count));
        Assert.Equal(20, report.Examples);
        Assert.Null(none);
        Assert.NotEmpty(Directory.GetFiles(cache));

        var (separate, _, valReport) = TrainingData.Load(new TrainingOptions { Data = train, ValData = valFile, SeqLen = 32, CacheDir = cache }, Tok);
        Assert.Equal((20, 1), (separate.Train.Count, separate.Validation!.Count));
        Assert.Equal(DatasetFormat.PromptCompletion, valReport!.Format);

        var e = Assert.Throws<TrainingConfigException>(() => TrainingData.Load(new TrainingOptions(), Tok));
        Assert.Equal("data", e.Field);
    }
}
