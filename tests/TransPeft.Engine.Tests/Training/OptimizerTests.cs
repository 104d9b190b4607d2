using TransPeft.Engine.Model;
using TransPeft.Engine.Training;

namespace TransPeft.Engine.Tests.Training;

public class OptimizerTests
{
    private static Parameter Param(string name, int[] shape, params float[] values)
    {
        var p = new Parameter(name, shape, values);
        p.EnableGrad();
        return p;
    }

    [Fact]
    public void AdamW_first_step_moves_each_weight_by_about_lr_against_the_gradient_sign()
    {
        // With bias correction, m̂ = g and v̂ = g² after one step, so the update is lr * g / (|g| + eps).
        var w = Param("w", [1, 3], 1f, -2f, 0.5f);
        var opt = new AdamW([w], 0.9, 0.999, 1e-8, weightDecay: 0);
        new[] { 0.5f, -4f, 1e-3f }.CopyTo(w.Grad!, 0);
        opt.Update(0.1);
        Assert.Equal(0.9f, w.Data[0], 5);
        Assert.Equal(-1.9f, w.Data[1], 5);
        Assert.Equal(0.4f, w.Data[2], 5);
        Assert.Equal(1, opt.Step);
    }

    [Fact]
    public void AdamW_matches_hand_computed_updates_over_three_steps_with_decoupled_decay()
    {
        double lr = 0.05, b1 = 0.9, b2 = 0.98, eps = 1e-6, wd = 0.1;
        var w = Param("w", [2, 1], 1f, -2f);
        var bias = Param("b", [2], 0.5f, 0.25f); // rank 1: not decayed
        var opt = new AdamW([w, bias], b1, b2, eps, wd);
        double[][] grads = [[0.5, -1.0], [0.1, 0.2], [-0.3, 0.4]];

        double[] ew = [1, -2], eb = [0.5, 0.25];
        double[] mw = new double[2], vw = new double[2], mb = new double[2], vb = new double[2];
        for (int t = 1; t <= 3; t++)
        {
            var g = grads[t - 1];
            for (int i = 0; i < 2; i++) { w.Grad![i] = (float)g[i]; bias.Grad![i] = (float)(g[i] * 2); }
            opt.Update(lr);
            for (int i = 0; i < 2; i++)
            {
                // Decoupled: θ ← θ - lr·wd·θ - lr · m̂ / (sqrt(v̂) + eps)
                mw[i] = b1 * mw[i] + (1 - b1) * g[i];
                vw[i] = b2 * vw[i] + (1 - b2) * g[i] * g[i];
                double mhat = mw[i] / (1 - Math.Pow(b1, t)), vhat = vw[i] / (1 - Math.Pow(b2, t));
                ew[i] = ew[i] - lr * wd * ew[i] - lr * mhat / (Math.Sqrt(vhat) + eps);

                double gb = g[i] * 2;
                mb[i] = b1 * mb[i] + (1 - b1) * gb;
                vb[i] = b2 * vb[i] + (1 - b2) * gb * gb;
                double mbh = mb[i] / (1 - Math.Pow(b1, t)), vbh = vb[i] / (1 - Math.Pow(b2, t));
                eb[i] = eb[i] - lr * mbh / (Math.Sqrt(vbh) + eps);
            }
            for (int i = 0; i < 2; i++)
            {
                Assert.Equal(ew[i], w.Data[i], 5);
                Assert.Equal(eb[i], bias.Data[i], 5);
                Assert.Equal(mw[i], opt.FirstMoment(0)[i], 6);
                Assert.Equal(vw[i], opt.SecondMoment(0)[i], 6);
            }
        }
    }

    [Fact]
    public void AdamW_weight_decay_alone_shrinks_matrices_but_not_vectors()
    {
        var w = Param("w", [1, 1], 2f);
        var b = Param("b", [1], 2f);
        var opt = new AdamW([w, b], 0.9, 0.999, 1e-8, weightDecay: 0.5);
        opt.Update(0.1); // zero gradients: only the decay acts
        Assert.Equal(2f * (1 - 0.1f * 0.5f), w.Data[0], 6);
        Assert.Equal(2f, b.Data[0]);
    }

    [Fact]
    public void Sgd_without_momentum_is_w_minus_lr_times_g_plus_coupled_decay()
    {
        var w = Param("w", [1, 2], 1f, -1f);
        var opt = new Sgd([w], momentum: 0, weightDecay: 0.1);
        w.Grad![0] = 0.5f; w.Grad[1] = 0.25f;
        opt.Update(0.2);
        Assert.Equal(1 - 0.2 * (0.5 + 0.1 * 1), w.Data[0], 6);
        Assert.Equal(-1 - 0.2 * (0.25 + 0.1 * -1), w.Data[1], 6);
    }

    [Fact]
    public void Sgd_momentum_matches_hand_computed_buffer()
    {
        // torch.optim.SGD: b1 = g1; b_t = μ b_{t-1} + g_t; θ ← θ - lr b_t.
        var w = Param("w", [1, 1], 1f);
        var opt = new Sgd([w], momentum: 0.9, weightDecay: 0);
        double[] g = [1.0, 0.5, -2.0];
        double theta = 1, buf = 0;
        for (int t = 0; t < 3; t++)
        {
            w.Grad![0] = (float)g[t];
            opt.Update(0.1);
            buf = t == 0 ? g[t] : 0.9 * buf + g[t];
            theta -= 0.1 * buf;
            Assert.Equal(theta, w.Data[0], 6);
        }
        Assert.Equal(1 - 0.1 * 1 - 0.1 * 1.4 - 0.1 * (1.26 - 2), theta, 12);
    }

    [Theory]
    [InlineData(OptimizerKind.AdamW)]
    [InlineData(OptimizerKind.Sgd)]
    public void State_saved_and_loaded_continues_bit_identically(OptimizerKind kind)
    {
        var options = new TrainingOptions { Optimizer = kind, Momentum = kind == OptimizerKind.Sgd ? 0.9 : 0, WeightDecay = 0.01 };
        float[] Grad(int t) => [0.1f * t, -0.2f, 0.3f / t, 1f];
        var a = Param("w", [2, 2], 1, 2, 3, 4);
        var optA = Optimizer.Create(options, [a]);
        for (int t = 1; t <= 4; t++) { Grad(t).CopyTo(a.Grad!, 0); optA.Update(0.01 * t); }

        var b = Param("w", [2, 2], 1, 2, 3, 4);
        var optB = Optimizer.Create(options, [b]);
        for (int t = 1; t <= 2; t++) { Grad(t).CopyTo(b.Grad!, 0); optB.Update(0.01 * t); }
        var path = Path.Combine(TempDirs.Create("tpeft-opt"), "optimizer.safetensors");
        optB.SaveState(path);
        var c = Param("w", [2, 2], b.Data.ToArray());
        var optC = Optimizer.Create(options, [c]);
        optC.LoadState(path);
        Assert.Equal(2, optC.Step);
        for (int t = 3; t <= 4; t++) { Grad(t).CopyTo(c.Grad!, 0); optC.Update(0.01 * t); }
        Assert.Equal(a.Data, c.Data);
    }

    [Fact]
    public void Loading_state_of_another_optimizer_or_shape_is_refused_with_the_file_named()
    {
        var dir = TempDirs.Create("tpeft-opt");
        var w = Param("w", [2, 2], 1, 2, 3, 4);
        var adam = new AdamW([w], 0.9, 0.999, 1e-8, 0);
        var path = Path.Combine(dir, "optimizer.safetensors");
        adam.SaveState(path);
        var e1 = Assert.ThrowsAny<Exception>(() => new Sgd([w], 0.9, 0).LoadState(path));
        Assert.Contains(path, e1.Message);
        Assert.Contains("adamw", e1.Message);
        var other = Param("w", [4, 1], 1, 2, 3, 4);
        var e2 = Assert.ThrowsAny<Exception>(() => new AdamW([other], 0.9, 0.999, 1e-8, 0).LoadState(path));
        Assert.Contains("w.exp_avg", e2.Message);
    }
}
