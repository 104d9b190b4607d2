using TransPeft.Engine.Inference;

namespace TransPeft.Engine.Tests.Inference;

/// <summary>
/// The continuous batcher over a toy "model" whose next token is a hash of everything a sequence was fed, in order:
/// any mix-up of rows, positions, chunks or tokens between requests changes the output. Stepped by hand, so every
/// test is deterministic.
/// </summary>
public class ContinuousBatcherTests
{
    /// <summary>A sequence's state as a KV cache would hold it: everything fed so far.</summary>
    private sealed class ToySequence(int id)
    {
        public int Id { get; } = id;
        public List<int> Fed { get; } = [];
    }

    private sealed class ToyModel
    {
        public List<BatchRow<ToySequence>[]> Steps { get; } = [];
        public Func<int, bool>? FailOnStep { get; set; }

        public void Step(ReadOnlySpan<BatchRow<ToySequence>> rows, Span<int> next)
        {
            Steps.Add(rows.ToArray());
            if (FailOnStep?.Invoke(Steps.Count) == true) throw new InvalidOperationException("device lost");
            for (int i = 0; i < rows.Length; i++)
            {
                var r = rows[i];
                Assert.Equal(r.Sequence.Fed.Count, r.Position); // the cache holds exactly the positions before
                r.Sequence.Fed.AddRange(r.Tokens.ToArray());
                if (r.Sample) next[i] = NextToken(r.Sequence.Fed);
            }
        }

        public static int NextToken(List<int> fed)
        {
            uint h = 2166136261;
            foreach (var t in fed) h = (h ^ (uint)t) * 16777619;
            return (int)(h % 1000);
        }
    }

    /// <summary>The tokens of a request served alone: prompt in one piece, then one token at a time.</summary>
    private static List<int> Alone(int[] prompt, int maxNew, IReadOnlyCollection<int>? stop = null)
    {
        var fed = new List<int>(prompt);
        var output = new List<int>();
        while (output.Count < maxNew)
        {
            int t = ToyModel.NextToken(fed);
            output.Add(t);
            if (stop?.Contains(t) == true) break;
            fed.Add(t);
        }
        return output;
    }

    private static int[] Prompt(int seed, int length) => Enumerable.Range(0, length).Select(i => (seed * 7919 + i * 31) % 1000).ToArray();

    private static async Task<List<int>> Collect(BatchRequest<ToySequence> r)
    {
        var list = new List<int>();
        await foreach (var t in r.ReadAllAsync()) list.Add(t);
        return list;
    }

    private static int RunToEnd(ContinuousBatcher<ToySequence> b, int limit = 10_000)
    {
        int steps = 0;
        while (b.Step()) Assert.True(++steps < limit, "the batcher did not finish");
        return steps;
    }

    [Fact]
    public async Task BatchedRequestsGetExactlyTheirTokensAloneUnderTheLimits()
    {
        var model = new ToyModel();
        var options = new BatcherOptions { MaxBatchRequests = 3, MaxBatchTokens = 8 };
        var b = new ContinuousBatcher<ToySequence>(model.Step, options);
        var requests = Enumerable.Range(0, 7).Select(i => new BatchRequest<ToySequence>(new ToySequence(i), Prompt(i, 1 + i * 3 % 13), 2 + i % 5)).ToList();
        var outputs = requests.Select(Collect).ToList();
        foreach (var r in requests.Take(4)) b.Submit(r);
        Assert.True(b.Step());
        foreach (var r in requests.Skip(4)) b.Submit(r); // arrive while others run
        RunToEnd(b);

        for (int i = 0; i < requests.Count; i++)
        {
            Assert.Equal(Alone(requests[i].Prompt, requests[i].MaxNewTokens), await outputs[i]);
            Assert.Equal(BatchFinish.Length, await requests[i].Completion);
        }
        foreach (var step in model.Steps)
        {
            Assert.True(step.Sum(r => r.Tokens.Length) <= options.MaxBatchTokens, "a step fed more tokens than the budget");
            Assert.True(step.Select(r => r.Sequence).Distinct().Count() == step.Length && step.Length <= options.MaxBatchRequests);
        }
        Assert.Contains(model.Steps, s => s.Any(r => !r.Sample)); // some prompt was chunked (the 19-token one)
        Assert.Equal(0, b.RunningCount);
        Assert.Equal(0, b.WaitingCount);
    }

    [Fact]
    public void RequestsJoinAndLeaveTheRunningBatchAtEveryStep()
    {
        var model = new ToyModel();
        var b = new ContinuousBatcher<ToySequence>(model.Step, new BatcherOptions { MaxBatchRequests = 4, MaxBatchTokens = 64 });
        var a = new BatchRequest<ToySequence>(new ToySequence(0), [1, 2, 3], 3);
        var c = new BatchRequest<ToySequence>(new ToySequence(1), [4, 5], 2);
        b.Submit(a);
        b.Step(); // a: prefill, first token
        b.Submit(c);
        b.Step(); // a decodes its 2nd token while c prefills: c joined mid-flight
        Assert.Equal([(0, 1), (1, 2)], model.Steps[1].Select(r => (r.Sequence.Id, r.Tokens.Length)));
        b.Step(); // a: 3rd token, done; c: 2nd token, done
        Assert.True(a.Completion.IsCompleted && c.Completion.IsCompleted);
        Assert.Equal(0, b.RunningCount);
        Assert.False(b.Step());
    }

    [Fact]
    public async Task OldestWaitingRequestIsNeverPassedAndNobodyStarves()
    {
        var model = new ToyModel();
        var b = new ContinuousBatcher<ToySequence>(model.Step, new BatcherOptions { MaxBatchRequests = 2, MaxBatchTokens = 5 });
        // A long prompt at the head of the queue, short ones behind it: they must not jump ahead.
        var requests = new List<BatchRequest<ToySequence>>
        {
            new(new ToySequence(0), Prompt(0, 2), 6),
            new(new ToySequence(1), Prompt(1, 30), 2),
        };
        requests.AddRange(Enumerable.Range(2, 6).Select(i => new BatchRequest<ToySequence>(new ToySequence(i), Prompt(i, 1), 1)));
        var outputs = requests.Select(Collect).ToList();
        foreach (var r in requests) b.Submit(r);
        int steps = RunToEnd(b, 200);

        var firstSeen = requests.Select(r => model.Steps.FindIndex(s => s.Any(x => x.Sequence == r.Sequence))).ToList();
        Assert.Equal(firstSeen.Order(), firstSeen); // joined in arrival order
        for (int i = 0; i < requests.Count; i++) Assert.Equal(Alone(requests[i].Prompt, requests[i].MaxNewTokens), await outputs[i]);
        // Every running request advanced at every step it was in the batch until it ended (no stalls).
        foreach (var r in requests)
        {
            var present = model.Steps.Select((s, i) => (s, i)).Where(x => x.s.Any(y => y.Sequence == r.Sequence)).Select(x => x.i).ToList();
            Assert.Equal(Enumerable.Range(present[0], present.Count), present);
        }
        Assert.True(steps < 40, $"{steps} steps");
    }

    [Fact]
    public async Task CancelledRequestsLeaveWhetherRunningOrWaitingAndOthersGoOn()
    {
        var model = new ToyModel();
        var b = new ContinuousBatcher<ToySequence>(model.Step, new BatcherOptions { MaxBatchRequests = 1, MaxBatchTokens = 16 });
        using var ctsRunning = new CancellationTokenSource();
        using var ctsWaiting = new CancellationTokenSource();
        var running = new BatchRequest<ToySequence>(new ToySequence(0), [1, 2], 100, cancellationToken: ctsRunning.Token);
        var waiting = new BatchRequest<ToySequence>(new ToySequence(1), [3], 5, cancellationToken: ctsWaiting.Token);
        var last = new BatchRequest<ToySequence>(new ToySequence(2), [4, 5, 6], 4);
        var runningOut = Collect(running);
        var lastOut = Collect(last);
        b.Submit(running); b.Submit(waiting); b.Submit(last);
        b.Step(); b.Step();
        Assert.Equal(2, running.Generated);
        ctsRunning.Cancel();
        ctsWaiting.Cancel();
        RunToEnd(b);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => runningOut);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running.Completion);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.Completion);
        Assert.DoesNotContain(model.Steps, s => s.Any(r => r.Sequence.Id == 1)); // never ran
        Assert.Equal(2, model.Steps.Count(s => s.Any(r => r.Sequence.Id == 0)));  // left right after the cancel
        Assert.Equal(Alone(last.Prompt, 4), await lastOut);
    }

    [Fact]
    public async Task AStopTokenEndsTheRequestAndIsDelivered()
    {
        var prompt = Prompt(3, 4);
        var free = Alone(prompt, 6);
        var b = new ContinuousBatcher<ToySequence>(new ToyModel().Step);
        var r = new BatchRequest<ToySequence>(new ToySequence(0), prompt, 6, stopTokens: [free[2]]);
        var output = Collect(r);
        b.Submit(r);
        RunToEnd(b);
        Assert.Equal(free.Take(3), await output);
        Assert.Equal(BatchFinish.Stop, await r.Completion);
    }

    [Fact]
    public async Task AFailedStepFailsItsRequestsAndTheBatcherGoesOn()
    {
        var model = new ToyModel { FailOnStep = n => n == 2 };
        var b = new ContinuousBatcher<ToySequence>(model.Step);
        var first = new BatchRequest<ToySequence>(new ToySequence(0), [1], 5);
        b.Submit(first);
        b.Step();
        b.Step();
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => first.Completion);
        Assert.Equal("device lost", e.Message);
        var later = new BatchRequest<ToySequence>(new ToySequence(1), [2, 3], 2);
        var output = Collect(later);
        b.Submit(later);
        RunToEnd(b);
        Assert.Equal(Alone([2, 3], 2), await output);
    }

    [Fact]
    public async Task CloseRefusesNewRequestsAndRunAsyncEndsOnceInFlightWorkIsDone()
    {
        var b = new ContinuousBatcher<ToySequence>(new ToyModel().Step);
        var r = new BatchRequest<ToySequence>(new ToySequence(0), [7, 8], 20);
        var output = Collect(r);
        var loop = b.RunAsync();
        b.Submit(r);
        b.Close();
        Assert.Throws<InvalidOperationException>(() => b.Submit(new BatchRequest<ToySequence>(new ToySequence(1), [1], 1)));
        await loop.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(Alone([7, 8], 20), await output);
    }

    [Fact]
    public async Task StoppingTheLoopCancelsWhatIsLeft()
    {
        var gate = new ManualResetEventSlim(false);
        var b = new ContinuousBatcher<ToySequence>((rows, next) => { gate.Wait(); new ToyModel().Step(rows, next); });
        using var stop = new CancellationTokenSource();
        var r = new BatchRequest<ToySequence>(new ToySequence(0), [1], 1000);
        var loop = Task.Run(() => b.RunAsync(stop.Token));
        b.Submit(r);
        stop.Cancel();
        gate.Set();
        await loop.WaitAsync(TimeSpan.FromSeconds(30));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => r.Completion);
    }

    [Fact]
    public void BadOptionsAndRequestsAreRefused()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ContinuousBatcher<int>((_, _) => { }, new BatcherOptions { MaxBatchRequests = 8, MaxBatchTokens = 8 }));
        Assert.Contains("max batch tokens (8) must exceed max batch requests (8)", e.Message);
        Assert.Throws<ArgumentException>(() => new BatchRequest<int>(0, [], 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BatchRequest<int>(0, [1], 0));
        var b = new ContinuousBatcher<int>((_, _) => { });
        var r = new BatchRequest<int>(0, [1], 1);
        b.Submit(r);
        Assert.Throws<InvalidOperationException>(() => b.Submit(r));
    }
}
