using TransPeft.Engine.Model;

namespace TransPeft.Engine.Training;

/// <summary>Global-norm clipping over all trainable gradients, as torch.nn.utils.clip_grad_norm_.</summary>
internal static class GradientClipping
{
    /// <summary>The L2 norm of all gradients together, accumulated in fp64.</summary>
    public static double GlobalNorm(IReadOnlyList<Parameter> parameters)
    {
        double sum = 0;
        foreach (var p in parameters)
        {
            var g = Grad(p);
            for (int i = 0; i < g.Length; i++) sum += (double)g[i] * g[i];
        }
        return Math.Sqrt(sum);
    }

    /// <summary>
    /// Scales every gradient by maxNorm / (norm + 1e-6) when the global norm exceeds maxNorm (maxNorm 0 =
    /// no clipping). Returns the norm before clipping, which is what the metrics report.
    /// </summary>
    public static double ClipGlobalNorm(IReadOnlyList<Parameter> parameters, double maxNorm)
    {
        double norm = GlobalNorm(parameters);
        if (maxNorm > 0 && norm > maxNorm && double.IsFinite(norm))
        {
            float scale = (float)(maxNorm / (norm + 1e-6));
            foreach (var p in parameters)
            {
                var g = Grad(p);
                for (int i = 0; i < g.Length; i++) g[i] *= scale;
            }
        }
        return norm;
    }

    internal static float[] Grad(Parameter p) =>
        p.Grad ?? throw new InvalidOperationException($"trainable parameter '{p.Name}' has no gradient buffer (call EnableGrad)");
}
