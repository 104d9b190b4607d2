using Microsoft.ML.Tokenizers;
using TransPeft.Engine.Model;
using TransPeft.Engine.Sessions;
using TransPeft.Engine.Training;

namespace TransPeft.Experiments;

/// <summary>
/// The first sequences of a held-out text as language-modelling batches: the text's ids cut into
/// <c>seqLen</c>-token rows (every token a target), <see cref="RowsPerBatch"/> rows per batch. The base models'
/// held-out losses and the activation analysis both run on these.
/// </summary>
internal sealed class HeldOutText
{
    public const int RowsPerBatch = 8;

    public string Name { get; }
    public IReadOnlyList<TokenBatch> Batches { get; }
    public long Tokens => Batches.Sum(b => (long)b.BatchSize * b.SeqLen);

    private HeldOutText(string name, IReadOnlyList<TokenBatch> batches) { Name = name; Batches = batches; }

    public static HeldOutText Load(string name, string path, Tokenizer tokenizer, int seqLen, int maxSequences)
    {
        var ids = tokenizer.EncodeToIds(File.ReadAllText(path)).ToArray();
        int rows = Math.Min(maxSequences, ids.Length / seqLen);
        if (rows == 0) throw new InvalidDataException($"{path}: the held-out text has {ids.Length} tokens, fewer than one sequence of {seqLen}");
        var batches = new List<TokenBatch>();
        for (int r = 0; r < rows; r += RowsPerBatch)
        {
            int b = Math.Min(RowsPerBatch, rows - r);
            batches.Add(TokenBatch.FromIds(b, seqLen, ids[(r * seqLen)..((r + b) * seqLen)]));
        }
        return new HeldOutText(name, batches);
    }

    /// <summary>Mean cross-entropy per target token of a base model on these batches, on the CPU with the calling
    /// thread's budget (<see cref="Engine.Compute.CpuThreads"/>).</summary>
    public double Loss(TransformerModel model)
    {
        using var session = InferenceSession.FromModel(model);
        using var context = session.CreateContext();
        double sum = 0;
        long n = 0;
        foreach (var b in Batches)
        {
            var (s, c) = context.Loss(b);
            sum += s; n += c;
        }
        return sum / n;
    }
}
