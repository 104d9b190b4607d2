using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Compute;
using TransPeft.Engine.Compute.Cpu;
using TransPeft.Engine.Inference;
using TransPeft.Engine.Lora;
using TransPeft.Engine.Model;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Evaluation;

/// <summary>
/// Scores a model (optionally with a LoRA adapter, applied unmerged) on evaluation records, on any backend
/// (through a session, or the CPU for a bare model), never perturbed (Trans-PEFT masks and drops exist only in training):
/// <list type="bullet">
/// <item><see cref="Classify"/>: each candidate label ranked by Σ log p(label tokens | prompt);</item>
/// <item><see cref="ExactMatch"/>: greedy KV-cache generation, answer extraction, exact match;</item>
/// <item><see cref="CompletionLoss"/>: mean cross-entropy over completion tokens, and perplexity.</item>
/// </list>
/// Token ids of an example are encode(prompt) followed by encode(completion), each encoded on its own with no
/// special tokens (a bos_token_id first when <see cref="EvalOptions.PrependBos"/>), so the boundary between
/// prompt and completion is exact. <paramref name="source"/> names the records' file in error messages.
/// </summary>
public sealed class TaskEvaluator
{
    private readonly EvalOptions _options;
    private readonly IInferenceModel _model;
    private readonly Tokenizer? tokenizer;
    private readonly string? source;
    private readonly int _threads;
    private object? _scratch;
    private Generator? _generator;

    /// <summary>Evaluation of a bare model (and adapter) on the CPU backend.</summary>
    public TaskEvaluator(TransformerModel model, LoraAdapter? adapter, Tokenizer tokenizer, EvalOptions? options = null, string? source = null)
        : this(CpuTransformer.ForInference(model, adapter), tokenizer, options, source, 0) { }

    /// <summary>Evaluation through a session (its device and threads), with the base model or a loaded adapter. Without a
    /// tokenizer in the session only pre-tokenized records (<see cref="EvalRecord.Tokenized"/>) can be evaluated.</summary>
    public TaskEvaluator(Sessions.InferenceSession session, string? adapter, EvalOptions? options = null, string? source = null)
        : this(session.BackendFor(adapter), session.Tokenizer?.Tokenizer, options, source, session.Options.Threads) { }

    private TaskEvaluator(IInferenceModel model, Tokenizer? tokenizer, EvalOptions? options, string? source, int threads)
    {
        _options = Validated(options ?? new EvalOptions());
        _model = model;
        this.tokenizer = tokenizer;
        this.source = source;
        _threads = threads;
    }

    public ModelConfig Config => _model.Config;

    private static EvalOptions Validated(EvalOptions o) { o.Validate(); return o; }

    // ---------------------------------------------------------------- tokens

    internal int[] Encode(string text) => tokenizer switch
    {
        null => throw new InvalidOperationException("text records need a tokenizer; this evaluator has none (pre-tokenized records: prompt_ids, completion_ids, label_ids)"),
        // SentencePiece tokenizers add BOS (and maybe EOS) by default; a completion encoded on its own must not get one.
        SentencePieceTokenizer sp => sp.EncodeToIds(text, addBeginningOfSentence: false, addEndOfSentence: false).ToArray(),
        _ => tokenizer.EncodeToIds(text).ToArray(),
    };

    /// <summary>The ids of a record's text: encoded, or read back from a tokenized record's id spelling.</summary>
    private int[] Tokens(EvalRecord r, string text, string field)
    {
        if (!r.Tokenized) return Encode(text);
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ids = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ids[i]) || ids[i] >= Config.VocabSize)
                throw new EvalDataException(r.Where(source), field, $"token ids below the model's vocab_size {Config.VocabSize}, got \"{text}\"");
        return ids;
    }

    internal int[] EncodePrompt(EvalRecord r)
    {
        var ids = Tokens(r, r.Prompt, "prompt_ids");
        if (_options.PrependBos)
        {
            int bos = Config.BosTokenId ?? throw new ArgumentException("PrependBos is set but the model's config.json has no bos_token_id");
            ids = [bos, .. ids];
        }
        if (ids.Length == 0)
            throw new EvalDataException(r.Where(source), "prompt", "text that encodes to at least one token (or PrependBos): the first completion token needs a context");
        return ids;
    }

    private void CheckLength(EvalRecord r, int tokens, string what)
    {
        if (tokens > Config.MaxPositionEmbeddings)
            throw new EvalDataException(r.Where(source), what, $"at most max_position_embeddings = {Config.MaxPositionEmbeddings} tokens, got {tokens}");
    }

    // ---------------------------------------------------------------- classification

    /// <summary>
    /// Σ_j log p(c_j | prompt, c_&lt;j) for each candidate token sequence c: the prompt is run once into a KV
    /// cache, then each candidate's tokens are fed one at a time from the cached prompt (rolling the cache back
    /// between candidates), so the prompt costs one forward however many candidates there are.
    /// </summary>
    internal double[] CandidateLogLikelihoods(int[] promptIds, IReadOnlyList<int[]> candidates)
    {
        int p = promptIds.Length;
        int longest = candidates.Max(c => c.Length);
        using var cache = _model.CreateCache(1, p + longest - 1); // a CUDA cache's device slot goes back at the end
        int v = Config.VocabSize;
        var promptLogits = new float[v];
        var logits = new float[v];
        var one = new int[1];
        _model.Prefill(cache, promptIds, 1, p, promptLogits);
        var result = new double[candidates.Count];
        for (int k = 0; k < candidates.Count; k++)
        {
            var c = candidates[k];
            cache.Length = p; // later positions are overwritten; attention never looks past Length
            double ll = Sampling.LogSoftmaxAt(promptLogits, c[0]);
            for (int j = 1; j < c.Length; j++)
            {
                one[0] = c[j - 1];
                _model.Decode(cache, one, logits);
                ll += Sampling.LogSoftmaxAt(logits, c[j]);
            }
            result[k] = ll;
        }
        return result;
    }


    public ClassificationResult Classify(IReadOnlyList<EvalRecord> records)
    {
        using var threads = CpuParallel.Use(_threads);
        if (records.Count == 0) throw new ArgumentException("no records to classify");
        string labelSource = records.All(r => r.Labels is not null) ? "records"
            : _options.Labels is not null ? (records.Any(r => r.Labels is not null) ? "records, else task labels" : "task labels")
            : "distinct gold completions";
        IReadOnlyList<string> derived = _options.Labels ?? records.Select(r => r.Completion).Distinct(StringComparer.Ordinal).ToList();
        if (_options.Labels is null && records.Any(r => r.Labels is null) && derived.Count < 2)
            throw new ArgumentException($"{source ?? "records"}: classification needs at least two candidate labels: give them per record (\"labels\") or for the task; the gold completions hold only {derived.Count} distinct value");

        var labels = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        int Index(string s) { if (!index.TryGetValue(s, out int i)) { i = labels.Count; labels.Add(s); index[s] = i; } return i; }
        // Result labels: the task's list first (in its order), then record labels as they appear.
        if (_options.Labels is not null || records.Any(r => r.Labels is null)) foreach (var l in derived) Index(l);
        var encoded = new Dictionary<string, int[]>(StringComparer.Ordinal);
        var pairs = new List<(int Gold, int Pred)>();
        var predictions = _options.KeepPredictions ? new List<ClassificationPrediction>() : null;

        foreach (var r in records)
        {
            var candidates = r.Labels ?? derived;
            string gold = MatchGold(r, candidates);
            var promptIds = EncodePrompt(r);
            var candIds = candidates.Select(c => encoded.TryGetValue(c, out var e) ? e : encoded[c] = EncodeLabel(r, c)).ToList();
            CheckLength(r, promptIds.Length + candIds.Max(c => c.Length), "prompt + label");
            var ll = CandidateLogLikelihoods(promptIds, candIds);
            int best = 0;
            for (int k = 1; k < ll.Length; k++) if (ll[k] > ll[best]) best = k;
            string pred = candidates[best];
            pairs.Add((Index(gold), Index(pred)));
            foreach (var c in candidates) Index(c);
            predictions?.Add(new ClassificationPrediction(r.Line, gold, pred, pred == gold, candidates.ToList(), ll));
        }

        var confusion = new int[labels.Count][];
        for (int i = 0; i < labels.Count; i++) confusion[i] = new int[labels.Count];
        foreach (var (g, p) in pairs) confusion[g][p]++;
        var perClass = new Dictionary<string, ClassCounts>(StringComparer.Ordinal);
        for (int i = 0; i < labels.Count; i++)
            perClass[labels[i]] = new ClassCounts(confusion[i].Sum(), confusion.Sum(row => row[i]), confusion[i][i]);
        int correct = pairs.Count(x => x.Gold == x.Pred);
        return new ClassificationResult(pairs.Count, correct, (double)correct / pairs.Count, Statistics.Wilson(correct, pairs.Count),
            labels, perClass, confusion, labelSource, predictions);
    }

    private int[] EncodeLabel(EvalRecord r, string label)
    {
        var ids = Tokens(r, label, "label_ids");
        if (ids.Length == 0) throw new EvalDataException(r.Where(source), "labels", $"labels that encode to at least one token; \"{label}\" encodes to none");
        return ids;
    }

    /// <summary>The candidate the gold completion names: exactly, else the one candidate equal to it once trimmed.</summary>
    private string MatchGold(EvalRecord r, IReadOnlyList<string> candidates)
    {
        foreach (var c in candidates) if (c == r.Completion) return c;
        var trimmed = candidates.Where(c => c.Trim() == r.Completion.Trim()).ToList();
        if (trimmed.Count == 1) return trimmed[0];
        throw new EvalDataException(r.Where(source), "completion",
            $"one of the candidate labels [{string.Join(", ", candidates.Select(c => $"\"{c}\""))}], got \"{r.Completion}\"");
    }

    // ---------------------------------------------------------------- generation

    public ExactMatchResult ExactMatch(IReadOnlyList<EvalRecord> records)
    {
        using var threads = CpuParallel.Use(_threads);
        if (records.Count == 0) throw new ArgumentException("no records to evaluate");
        if (records.Any(r => r.Tokenized) || tokenizer is null)
            throw new ArgumentException($"{source ?? "records"}: exact-match evaluation compares generated text, so it needs text records and a tokenizer; pre-tokenized records support loss and classification");
        var extractor = new AnswerExtractor(_options.AnswerPattern);
        _generator ??= new Generator(_model, tokenizer);
        var gen = new GenerationOptions
        {
            Greedy = true,
            MaxNewTokens = _options.MaxNewTokens,
            StopStrings = _options.StopStrings ?? (_options.AnswerPattern is null ? ["\n"] : []),
        };
        var predictions = _options.KeepPredictions ? new List<GenerationPrediction>() : null;
        int correct = 0, noAnswer = 0;
        foreach (var r in records)
        {
            string goldAnswer = _options.GoldIsAnswer ? r.Completion.Trim()
                : extractor.Extract(r.Completion) ?? throw new EvalDataException(r.Where(source), "completion",
                    $"a gold completion that {extractor.Describe()} finds an answer in (or set GoldIsAnswer), got \"{r.Completion}\"");
            var promptIds = EncodePrompt(r);
            CheckLength(r, promptIds.Length + 1, "prompt");
            var output = _generator.Generate(promptIds, gen);
            string text = output.Text ?? tokenizer.Decode(output.TokenIds);
            string? answer = extractor.Extract(text);
            if (answer is null) noAnswer++;
            bool ok = AnswerExtractor.AnswersEqual(answer, goldAnswer, _options.NumericEquality);
            if (ok) correct++;
            predictions?.Add(new GenerationPrediction(r.Line, text, answer, goldAnswer, ok, output.StopReason));
        }
        return new ExactMatchResult(records.Count, correct, (double)correct / records.Count, Statistics.Wilson(correct, records.Count),
            extractor.Describe(), _options.MaxNewTokens, noAnswer, predictions);
    }

    // ---------------------------------------------------------------- loss

    /// <summary>Builds the [B, T] batches: rows sorted by length, right-padded, labels -100 on prompt and padding.</summary>
    internal IEnumerable<TokenBatch> LossBatches(IReadOnlyList<EvalRecord> records)
    {
        var seqs = new List<(int[] Ids, int PromptLen)>();
        foreach (var r in records)
        {
            var p = EncodePrompt(r);
            var c = Tokens(r, r.Completion, "completion_ids");
            if (c.Length == 0) throw new EvalDataException(r.Where(source), "completion", "text that encodes to at least one token");
            CheckLength(r, p.Length + c.Length, "prompt + completion");
            seqs.Add(([.. p, .. c], p.Length));
        }
        var order = Enumerable.Range(0, seqs.Count).OrderBy(i => seqs[i].Ids.Length).ToArray();
        for (int s = 0; s < order.Length; s += _options.LossBatchSize)
        {
            var rows = order.Skip(s).Take(_options.LossBatchSize).Select(i => seqs[i]).ToList();
            int b = rows.Count, t = rows.Max(x => x.Ids.Length);
            var ids = new int[b * t];
            var labels = new int[b * t];
            Array.Fill(labels, TokenBatch.IgnoreIndex);
            for (int i = 0; i < b; i++)
            {
                var (seq, promptLen) = rows[i];
                seq.CopyTo(ids, i * t);
                for (int j = promptLen; j < seq.Length; j++) labels[i * t + j] = seq[j];
            }
            yield return new TokenBatch(b, t, ids, labels);
        }
    }

    public LossResult CompletionLoss(IReadOnlyList<EvalRecord> records)
    {
        using var threads = CpuParallel.Use(_threads);
        if (records.Count == 0) throw new ArgumentException("no records to evaluate");
        double sum = 0;
        long tokens = 0;
        foreach (var batch in LossBatches(records))
        {
            var (s, n) = _model.Loss(batch, ref _scratch);
            sum += s; tokens += n;
        }
        double mean = sum / tokens;
        return new LossResult(records.Count, tokens, mean, Math.Exp(mean));
    }
}
