namespace TransPeft.Engine.Inference;

/// <summary>
/// One row group of a batched forward step: feed <see cref="Tokens"/> to <see cref="Sequence"/> at positions
/// <see cref="Position"/>.. (its KV cache already holds the positions before), and when <see cref="Sample"/> is true,
/// produce the sequence's next token from the logits of the last fed token. A prompt longer than the step's token
/// budget is fed in chunks over several steps (chunked prefill); only its last chunk samples.
/// </summary>
public readonly record struct BatchRow<TSequence>(TSequence Sequence, ReadOnlyMemory<int> Tokens, int Position, bool Sample);

/// <summary>
/// One forward step over a mixed batch (rows of different requests, each at its own position, each with its own
/// adapter and KV cache). Writes the sampled token of row i to <c>next[i]</c> for rows with Sample set (other
/// entries are ignored). May throw: the requests of that step then fail with the exception, the others go on.
/// </summary>
public delegate void BatchStepFunction<TSequence>(ReadOnlySpan<BatchRow<TSequence>> rows, Span<int> next);

/// <summary>What one step did (for metrics: batch size histograms, tokens per second).</summary>
public readonly record struct BatchStepInfo(int Requests, int Tokens, int Prefilling, TimeSpan Elapsed);
