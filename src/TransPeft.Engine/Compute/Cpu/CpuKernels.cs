namespace TransPeft.Engine.Compute.Cpu;

/// <summary>
/// The CPU backend's kernels, public for the third audience: people profiling and benchmarking them
/// (tools/TransPeft.Bench). Thin forwarders with the kernels' own contracts and explicit shapes; a host running
/// models never needs them (it uses <see cref="Sessions.InferenceSession"/>).
/// </summary>
public static unsafe class CpuKernels
{
    /// <summary>
    /// Runs <paramref name="action"/> with <paramref name="threads"/> CPU threads (0 = every core), as a session
    /// with that thread option would: the count applies to kernels called on this thread inside it.
    /// </summary>
    public static void WithThreads(int threads, Action action)
    {
        using var _ = CpuParallel.Use(threads);
        action();
    }

    /// <summary>
    /// y[N, Out] (+)= alpha · x[N, In] · w[Out, In]ᵀ (a linear layer's forward), as the layers run it: the small-M
    /// kernel for few rows (at most <see cref="SmallRows"/>), the packed GEMM otherwise.
    /// </summary>
    public static void MatmulNT(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha) =>
        Gemm.MatmulNT(y, x, w, n, inDim, outDim, accumulate, alpha);

    /// <summary><see cref="MatmulNT"/> through the packed GEMM at any N.</summary>
    public static void PackedMatmulNT(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha) =>
        Gemm.PackedMatmulNT(y, x, w, n, inDim, outDim, accumulate, alpha);

    /// <summary><see cref="MatmulNT"/> through the small-M kernel (weights read in place, no packing) at any N.</summary>
    public static void RowDotNT(float* y, float* x, float* w, int n, int inDim, int outDim, bool accumulate, float alpha) =>
        RowDot.MatmulNT(y, x, w, n, inDim, outDim, accumulate, alpha);

    /// <summary>Rows up to which linear layers may take <see cref="RowDotNT"/> rather than the packed GEMM (fewer when In is short).</summary>
    public const int SmallRows = RowDot.MaxRows;

    /// <summary>dx[N, In] (+)= alpha · dy[N, Out] · w[Out, In] (a linear layer's input gradient).</summary>
    public static void MatmulNN(float* dx, float* dy, float* w, int n, int outDim, int inDim, bool accumulate, float alpha) =>
        Gemm.MatmulNN(dx, dy, w, n, outDim, inDim, accumulate, alpha);

    /// <summary>dw[Out, In] (+)= alpha · dy[N, Out]ᵀ · x[N, In] (a linear layer's weight gradient).</summary>
    public static void MatmulTN(float* dw, float* dy, float* x, int n, int outDim, int inDim, bool accumulate, float alpha) =>
        Gemm.MatmulTN(dw, dy, x, n, outDim, inDim, accumulate, alpha);

    /// <summary>Causal GQA attention forward: out [B, T, nh, d] and lse [B, nh, T] from q [B, T, nh, d], k and v [B, T, nkv, d].</summary>
    public static void AttentionForward(float[] outp, float[] lse, float[] q, float[] k, float[] v, int b, int t, int nh, int nkv, int d) =>
        Attention.Forward(outp, lse, q, k, v, b, t, t, 0, nh, nkv, d);

    /// <summary>Attention backward from the saved output and logsumexp (P recomputed): dq, dk, dv written.</summary>
    public static void AttentionBackward(float[] dq, float[] dk, float[] dv, float[] dout, float[] q, float[] k, float[] v, float[] outp, float[] lse,
        int b, int t, int nh, int nkv, int d) =>
        Attention.Backward(dq, dk, dv, dout, q, k, v, outp, lse, b, t, nh, nkv, d);

    /// <summary>a = silu(gate) · up (· mask), elementwise over <paramref name="count"/> values.</summary>
    public static void SwiGluForward(float[] a, float[] gate, float[] up, float[]? mask, int count) => SwiGlu.Forward(a, gate, up, mask, count);

    /// <summary>dgate, dup of Σ da·a (written, not accumulated).</summary>
    public static void SwiGluBackward(float[] dgate, float[] dup, float[] da, float[] gate, float[] up, float[]? mask, int count) =>
        SwiGlu.Backward(dgate, dup, da, gate, up, mask, count);
}
