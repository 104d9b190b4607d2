using TransPeft.Engine.Model;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Training;

public class ScheduleAndClippingTests
{
    [Fact]
    public void Warmup_ramps_linearly_to_the_base_rate()
    {
        var s = new LearningRateSchedule(ScheduleKind.Cosine, 1e-3, warmupSteps: 4, totalSteps: 20);
        Assert.Equal(0.25e-3, s.At(1), 15);
        Assert.Equal(0.5e-3, s.At(2), 15);
        Assert.Equal(1e-3, s.At(4), 15);
        Assert.Equal(1e-3, s.At(5), 15); // first step after warmup: full rate
    }

    [Fact]
    public void Constant_stays_at_the_base_rate()
    {
        var s = new LearningRateSchedule(ScheduleKind.Constant, 0.1, 2, 10);
        Assert.Equal(0.05, s.At(1), 15);
        Assert.All(Enumerable.Range(2, 9), k => Assert.Equal(0.1, s.At(k), 15));
    }

    [Fact]
    public void Linear_decays_to_lr_over_decay_steps_at_the_last_step()
    {
        var s = new LearningRateSchedule(ScheduleKind.Linear, 1.0, 0, 10);
        Assert.Equal(1.0, s.At(1), 15);
        Assert.Equal(0.5, s.At(6), 15);
        Assert.Equal(0.1, s.At(10), 15);
        var w = new LearningRateSchedule(ScheduleKind.Linear, 1.0, 2, 12); // 10 decay steps after 2 warmup
        Assert.Equal(1.0, w.At(3), 15);
        Assert.Equal(0.5, w.At(8), 15);
        Assert.Equal(0.1, w.At(12), 15);
    }

    [Fact]
    public void Cosine_is_half_at_the_middle_and_follows_the_cosine()
    {
        var s = new LearningRateSchedule(ScheduleKind.Cosine, 2.0, 0, 100);
        Assert.Equal(2.0, s.At(1), 15);
        Assert.Equal(1.0, s.At(51), 12);
        Assert.Equal(1.0 + Math.Cos(Math.PI * 0.25), s.At(26), 12);
        Assert.Equal(1.0 + Math.Cos(Math.PI * 0.99), s.At(100), 12);
        for (int k = 2; k <= 100; k++) Assert.True(s.At(k) < s.At(k - 1));
    }

    [Fact]
    public void Warmup_ratio_rounds_up_like_hugging_face()
    {
        var o = new TrainingOptions { WarmupRatio = 0.03 };
        Assert.Equal(3, o.ResolveWarmupSteps(100));
        Assert.Equal(4, o.ResolveWarmupSteps(101)); // ceil(3.03)
        Assert.Equal(0, new TrainingOptions().ResolveWarmupSteps(100));
        Assert.Equal(7, new TrainingOptions { WarmupSteps = 7 }.ResolveWarmupSteps(100));
    }

    [Fact]
    public void Total_steps_from_epochs_round_up_partial_batches()
    {
        var o = new TrainingOptions { Epochs = 3, BatchSize = 4, GradAccum = 2 };
        Assert.Equal(38, o.ResolveTotalSteps(100)); // ceil(300 / 8)
        Assert.Equal(5, new TrainingOptions { Steps = 5, BatchSize = 4 }.ResolveTotalSteps(100));
        Assert.Equal(13, new TrainingOptions { BatchSize = 8 }.ResolveTotalSteps(100)); // 1 epoch by default
    }

    private static Parameter WithGrad(string name, params float[] g)
    {
        var p = Parameter.Zeros(name, g.Length);
        p.EnableGrad();
        g.CopyTo(p.Grad!, 0);
        return p;
    }

    [Fact]
    public void Clipping_scales_all_gradients_by_the_global_norm()
    {
        var a = WithGrad("a", 3f, 0f);
        var b = WithGrad("b", 0f, 4f);
        double norm = GradientClipping.ClipGlobalNorm([a, b], 1.0);
        Assert.Equal(5.0, norm, 12);
        Assert.Equal(0.6f, a.Grad![0], 5);
        Assert.Equal(0.8f, b.Grad![1], 5);
        Assert.Equal(1.0, GradientClipping.GlobalNorm([a, b]), 5);
    }

    [Fact]
    public void Clipping_leaves_small_gradients_alone_and_zero_means_off()
    {
        var a = WithGrad("a", 3f, 4f);
        Assert.Equal(5.0, GradientClipping.ClipGlobalNorm([a], 10.0), 12);
        Assert.Equal([3f, 4f], a.Grad!);
        Assert.Equal(5.0, GradientClipping.ClipGlobalNorm([a], 0), 12);
        Assert.Equal([3f, 4f], a.Grad!);
    }
}
