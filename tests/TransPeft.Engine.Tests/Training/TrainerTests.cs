using TransPeft.Engine.IO;
using TransPeft.Engine.Text;
using TransPeft.Engine.Training;
using TransPeft.Engine.TransPeft;
using static TransPeft.Engine.Tests.Training.TrainerTestKit;

namespace TransPeft.Engine.Tests.Training;

public class TrainerTests
{
    /// <summary>Options that exercise every stateful part: AdamW moments, warmup + cosine, clipping, decay,
    /// accumulation, model dropout and Trans-PEFT drops drawn from the step's random stream.</summary>
    private static TrainingOptions Options() => new()
    {
        Steps = 10, BatchSize = 2, GradAccum = 2, LearningRate = 0.05, Schedule = ScheduleKind.Cosine, WarmupSteps = 2,
        MaxGradNorm = 0.5, WeightDecay = 0.1, Seed = 11, PDrop = 0.3, EvalEvery = 3, SaveEvery = 0, KeepCheckpoints = 0,
    };

    private static FakeBigramModel Model(int seed = 1) => new(Vocab, seed) { Dropout = 0.2 };

    [Fact]
    public void One_micro_batch_of_4_equals_2_of_2_in_loss_and_gradient()
    {
        var data = MakeData(validation: false);
        var o4 = new TrainingOptions { Steps = 3, BatchSize = 4, GradAccum = 1, Seed = 5 };
        var o2 = o4 with { BatchSize = 2, GradAccum = 2 };
        var m4 = new FakeBigramModel(Vocab, 1);
        var m2 = new FakeBigramModel(Vocab, 1);
        var t4 = new Trainer(m4, data, o4, TempDir());
        var t2 = new Trainer(m2, data, o2, TempDir());
        for (int step = 1; step <= 3; step++)
        {
            var b4 = t4.MicroBatches(step);
            var b2 = t2.MicroBatches(step);
            Assert.Single(b4);
            Assert.Equal(2, b2.Length);
            var (l4, c4) = t4.AccumulateGradients(b4, step);
            var (l2, c2) = t2.AccumulateGradients(b2, step);
            Assert.Equal(c4, c2);
            Assert.Equal(l4, l2, 12);
            var g4 = m4.GradSnapshot();
            var g2 = m2.GradSnapshot();
            for (int i = 0; i < g4.Length; i++) Assert.Equal(g4[i], g2[i], 6);

            // The step's loss is the mean over every counted token of the step, not a mean of per-batch means.
            double sum = 0; int counted = 0;
            foreach (var b in b2)
                for (int r = 0; r < b.BatchSize; r++)
                {
                    var row = new TokenBatch(1, b.SeqLen, b.InputIds[(r * b.SeqLen)..((r + 1) * b.SeqLen)], b.Labels[(r * b.SeqLen)..((r + 1) * b.SeqLen)]);
                    var (ls, c) = m2.Loss(row);
                    sum += ls; counted += c;
                }
            Assert.Equal(sum / counted, l2, 12);
            Assert.All(m2.Calls.TakeLast(2), call => Assert.Equal(1f / c2, call.Scale));
        }
    }

    [Fact]
    public void Interrupt_then_resume_reproduces_the_uninterrupted_run_bit_for_bit()
    {
        var data = MakeData();
        var full = TempDir();
        var reference = Model();
        var done = new Trainer(reference, data, Options(), full).Run();
        Assert.True(done.Completed);
        Assert.Equal(10, LossBits(full).Length);

        var split = TempDir();
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress(p => { if (p.Event == TrainingEvent.Step && p.Step == 5) cts.Cancel(); });
        var first = new Trainer(Model(), data, Options(), split, progress: progress).Run(cancel: cts.Token);
        Assert.True(first.Interrupted);
        Assert.Equal(5, first.Step);
        Assert.Null(first.FinalWeights);
        Assert.Equal(Path.Combine(split, "checkpoints", "step-00000005"), first.LastCheckpoint);  // Ctrl-C wrote a checkpoint
        Assert.Contains(progress.Reports, r => r.Event == TrainingEvent.Interrupted);

        var resumedModel = Model(seed: 99); // different initial weights: the checkpoint must restore them
        var second = new Trainer(resumedModel, data, Options(), split).Run(resumeFrom: split);
        Assert.True(second.Completed);
        Assert.Equal(5, second.SessionLosses.Count);

        Assert.Equal(LossBits(full), LossBits(split));
        Assert.Equal(ValLossBits(full), ValLossBits(split));
        Assert.Equal(reference.Snapshot(), resumedModel.Snapshot());
        Assert.Equal(
            File.ReadAllBytes(Path.Combine(full, Trainer.FinalWeightsDir, Trainer.DefaultWeightsFile)),
            File.ReadAllBytes(Path.Combine(split, Trainer.FinalWeightsDir, Trainer.DefaultWeightsFile)));
    }

    [Fact]
    public void Resuming_from_a_periodic_checkpoint_replays_the_rest_identically()
    {
        var data = MakeData();
        var dir = TempDir();
        var options = Options() with { SaveEvery = 5 };
        var reference = Model();
        new Trainer(reference, data, options, dir).Run();
        var expected = LossBits(dir);
        var expectedWeights = reference.Snapshot();

        var again = Model(seed: 7);
        var r = new Trainer(again, data, options, dir).Run(resumeFrom: Path.Combine(dir, "checkpoints", "step-00000005"));
        Assert.Equal(5, r.SessionLosses.Count);
        Assert.Equal(expected, LossBits(dir));     // metrics after step 5 were cut and rewritten, not duplicated
        Assert.Equal(expectedWeights, again.Snapshot());
        Assert.Equal([5, 10], new CheckpointStore(dir).List().Select(c => c.Step));
    }

    [Fact]
    public void Resuming_a_finished_run_changes_nothing()
    {
        var dir = TempDir();
        new Trainer(Model(), MakeData(), Options(), dir).Run();
        var before = File.ReadAllText(Path.Combine(dir, MetricsLog.FileName));
        var r = new Trainer(Model(seed: 5), MakeData(), Options(), dir).Run(resumeFrom: dir);
        Assert.True(r.Completed);
        Assert.Empty(r.SessionLosses);
        Assert.Equal(before, File.ReadAllText(Path.Combine(dir, MetricsLog.FileName)));
    }

    [Fact]
    public void A_crash_while_writing_a_checkpoint_leaves_the_previous_one_intact()
    {
        var data = MakeData(validation: false);
        var dir = TempDir();
        var options = Options() with { Steps = 6, SaveEvery = 2, EvalEvery = 0 };
        var model = Model();
        int saves = 0;
        void CrashingSave(string weightsDir)
        {
            if (++saves == 2)
            {
                File.WriteAllText(Path.Combine(weightsDir, Trainer.DefaultWeightsFile), "half a file");
                throw new IOException("No space left on device");
            }
            new SafetensorsWriter().AddFloat(model.W.Name, model.W.Data, model.W.LongShape).AddFloat(model.B.Name, model.B.Data, model.B.LongShape)
                .Save(Path.Combine(weightsDir, Trainer.DefaultWeightsFile));
        }
        var e = Assert.Throws<IOException>(() => new Trainer(model, data, options, dir, CrashingSave).Run());
        Assert.Contains("No space", e.Message);

        var store = new CheckpointStore(dir);
        Assert.Equal([2], store.List().Select(c => c.Step));
        Assert.False(Directory.Exists(store.PathOf(4)));
        var state = TrainerState.Load(store.PathOf(2));
        Assert.Equal(2, state.Step);
        // A hard kill mid-write leaves a partial folder behind: it is never listed, and the next run removes it.
        var partial = Path.Combine(store.Root, AtomicDirectory.PartialPrefix + "step-00000004-deadbeef");
        Directory.CreateDirectory(Path.Combine(partial, "weights"));
        File.WriteAllText(Path.Combine(partial, TrainerState.FileName), "{ truncated");
        Assert.Equal([2], store.List().Select(c => c.Step));
        Assert.Equal(store.PathOf(2), CheckpointStore.Resolve(dir));

        var resumed = Model(seed: 3);
        var r = new Trainer(resumed, data, options, dir).Run(resumeFrom: dir);
        Assert.True(r.Completed);
        Assert.False(Directory.Exists(partial));

        var clean = TempDir();
        var reference = Model();
        new Trainer(reference, data, options, clean).Run();
        Assert.Equal(LossBits(clean), LossBits(dir));
        Assert.Equal(reference.Snapshot(), resumed.Snapshot());
    }

    [Fact]
    public void Only_the_last_n_checkpoints_are_kept()
    {
        var dir = TempDir();
        new Trainer(Model(), MakeData(false), Options() with { SaveEvery = 2, KeepCheckpoints = 2 }, dir).Run();
        Assert.Equal([8, 10], new CheckpointStore(dir).List().Select(c => c.Step));
        var ck = new CheckpointStore(dir).PathOf(10);
        Assert.True(File.Exists(Path.Combine(ck, CheckpointStore.OptimizerFile)));
        Assert.True(File.Exists(Path.Combine(ck, CheckpointStore.WeightsDir, Trainer.DefaultWeightsFile)));
        Assert.True(File.Exists(Path.Combine(dir, Trainer.OptionsFileName)));
    }

    [Fact]
    public void A_fresh_run_refuses_an_output_folder_that_holds_a_run()
    {
        var dir = TempDir();
        new Trainer(Model(), MakeData(false), Options() with { Steps = 2 }, dir).Run();
        var e = Assert.Throws<OutputFolderException>(() => new Trainer(Model(), MakeData(false), Options() with { Steps = 2 }, dir).Run());
        Assert.Contains("resume the run it holds", e.Message);
    }

    [Fact]
    public void Resume_rejects_changed_trajectory_options_and_other_data()
    {
        var dir = TempDir();
        using var cts = new CancellationTokenSource();
        cts.Cancel(); // stop at once: the checkpoint is step 0
        new Trainer(Model(), MakeData(), Options(), dir).Run(cancel: cts.Token);
        var e = Assert.Throws<TrainingConfigException>(() => new Trainer(Model(), MakeData(), Options() with { LearningRate = 0.1 }, dir).Run(resumeFrom: dir));
        Assert.Equal("lr", e.Field);
        Assert.Contains(TrainerState.FileName, e.Message);
        Assert.Contains("0.05 as in the checkpoint", e.Message);

        var other = new TrainingData(Dataset(24, 42, "train"), Dataset(6, 2, "val"));
        var e2 = Assert.Throws<InvalidOperationException>(() => new Trainer(Model(), other, Options(), dir).Run(resumeFrom: dir));
        Assert.Contains("training data differs", e2.Message);

        // Non-trajectory options may change: train longer, save more often.
        var r = new Trainer(Model(), MakeData(), Options() with { Steps = 12, SaveEvery = 4 }, dir).Run(resumeFrom: dir);
        Assert.Equal(12, r.Step);
    }

    [Fact]
    public void Metrics_have_one_line_per_step_and_validation_at_intervals()
    {
        var dir = TempDir();
        var progress = new SyncProgress(_ => { });
        new Trainer(Model(), MakeData(), Options() with { Steps = 7, EvalEvery = 3 }, dir, progress: progress).Run();
        var lines = Metrics(dir);
        var steps = lines.Where(l => l.ContainsKey("loss")).ToList();
        Assert.Equal(Enumerable.Range(1, 7), steps.Select(l => l["step"]!.GetValue<int>()));
        foreach (var f in new[] { "loss", "lr", "grad_norm", "tokens", "tokens_per_s", "elapsed" })
            Assert.All(steps, l => Assert.True(l.ContainsKey(f), f));
        Assert.Equal(0.025, steps[0]["lr"]!.GetValue<double>(), 12); // warmup 1/2
        Assert.Equal([3, 6, 7], lines.Where(l => l.ContainsKey("val_loss")).Select(l => l["step"]!.GetValue<int>()));
        Assert.All(steps, l => Assert.True(l["tokens"]!.GetValue<long>() > 0));
        Assert.Equal(7, progress.Reports.Count(r => r.Event == TrainingEvent.Step));
        Assert.Equal(3, progress.Reports.Count(r => r.Event == TrainingEvent.Evaluation));
        Assert.Equal(TrainingEvent.Finished, progress.Reports[^1].Event);
        Assert.All(progress.Reports.Where(r => r.Event == TrainingEvent.Step), r => Assert.NotNull(r.Eta));
    }

    [Fact]
    public void Training_lowers_the_validation_loss_of_the_fake_model()
    {
        var dir = TempDir();
        var options = new TrainingOptions { Steps = 60, BatchSize = 4, LearningRate = 0.1, Schedule = ScheduleKind.Constant, EvalEvery = 60 };
        var model = new FakeBigramModel(Vocab, 1);
        var trainer = new Trainer(model, MakeData(), options, dir);
        double before = trainer.ValidationLoss().Loss;
        var r = trainer.Run();
        Assert.True(r.LastValLoss < before * 0.8, $"val loss {before} -> {r.LastValLoss}");
    }

    [Fact]
    public void Each_micro_batch_gets_its_random_stream_and_trans_peft_perturbation()
    {
        var model = new FakeBigramModel(Vocab, 1);
        var options = new TrainingOptions { Steps = 3, BatchSize = 2, GradAccum = 2, Seed = 1234, PMask = 0.2, PDrop = 0.1 };
        new Trainer(model, MakeData(false), options, TempDir()).Run();
        Assert.Equal(6, model.Calls.Count);
        for (int k = 0; k < 6; k++)
        {
            var ctx = model.Calls[k].Context;
            var expected = new RandomStream(1234, (uint)(k / 2 + 1), (uint)(k % 2));
            Assert.Equal(expected, ctx.Random);
            Assert.True(ctx.Training);
            var p = Assert.IsType<PhiloxFfnPerturbation>(ctx.Perturbation);
            Assert.Equal(expected, p.Stream);
            Assert.Equal(0.2, p.PMask);
            Assert.Equal(0.1, p.PDrop);
        }

        var plain = new FakeBigramModel(Vocab, 1);
        new Trainer(plain, MakeData(false), options with { PMask = 0, PDrop = 0 }, TempDir()).Run();
        Assert.All(plain.Calls, c => Assert.Null(c.Context.Perturbation));
    }

    [Fact]
    public void Trans_peft_drop_changes_the_trajectory_only_when_enabled()
    {
        long[] Run(double pDrop)
        {
            var dir = TempDir();
            new Trainer(new FakeBigramModel(Vocab, 1), MakeData(false), new TrainingOptions { Steps = 6, PDrop = pDrop, Seed = 3 }, dir).Run();
            return LossBits(dir);
        }
        Assert.Equal(Run(0), Run(0));
        Assert.Equal(Run(0.4), Run(0.4));
        Assert.NotEqual(Run(0), Run(0.4));
    }

    [Fact]
    public void A_nan_loss_stops_training_without_applying_the_update()
    {
        var model = new FakeBigramModel(Vocab, 1) { PoisonAfterCalls = 4 };
        float[]? afterStep4 = null;
        var progress = new SyncProgress(p => { if (p.Event == TrainingEvent.Step && p.Step == 4) afterStep4 = model.Snapshot(); });
        var trainer = new Trainer(model, MakeData(false), new TrainingOptions { Steps = 8, SaveEvery = 2 }, TempDir(), progress: progress);
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Run());
        Assert.Equal(5, e.Step);
        Assert.Contains("the loss is not finite", e.Message);
        Assert.Contains("step-00000004", e.Message);
        Assert.Equal(4, trainer.Optimizer.Step);
        Assert.Equal(afterStep4, model.Snapshot());
    }
}
