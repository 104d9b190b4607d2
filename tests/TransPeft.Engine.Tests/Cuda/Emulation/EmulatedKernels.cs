using System.Runtime.InteropServices;
using TransPeft.Cuda;
using TransPeft.Cuda.Native;
using TransPeft.Engine.Compute.Cuda;
using TransPeft.Engine.IO;
using TransPeft.Engine.TransPeft;

namespace TransPeft.Engine.Tests.Cuda.Emulation;

/// <summary>
/// Each kernel's contract from kernels/README.md, computed in plain C# on the emulated device's memory: fp32
/// arithmetic, bf16 rounding (round to nearest even, as IO/BFloat16.cs) wherever the kernel stores bf16, the same
/// Philox draws (TransPeft/RandomStream.cs), the same aliasing rules. Written from the README, not from the .cu
/// files, so it checks the backend against the documented contract.
/// </summary>
internal static class EmulatedKernels
{
    private static float Round(float v) => BFloat16.ToSingle(BFloat16.FromSingle(v));

    public static void Run(EmulatedDevice d, KernelId k, LaunchShape s, ReadOnlySpan<KernelArgument> a)
    {
        switch (k)
        {
            case KernelId.CastBf16ToF32:
            {
                long n = a[2].AsI64;
                var i = d.Bf(a[1].AsPtr, n); var o = d.F32(a[0].AsPtr, n);
                for (long e = 0; e < n; e++) o[(int)e] = i[e];
                break;
            }
            case KernelId.CastF32ToBf16:
            {
                long n = a[2].AsI64;
                var i = d.F32(a[1].AsPtr, n); var o = d.Bf(a[0].AsPtr, n);
                for (long e = 0; e < n; e++) o[e] = i[(int)e];
                break;
            }
            case KernelId.AddBf16 or KernelId.MulBf16:
            {
                long n = a[3].AsI64;
                var o = d.Bf(a[0].AsPtr, n); var x = d.Bf(a[1].AsPtr, n); var y = d.Bf(a[2].AsPtr, n);
                for (long e = 0; e < n; e++)
                {
                    float xv = x[e], yv = y[e];
                    o[e] = k == KernelId.AddBf16 ? xv + yv : xv * yv;
                }
                break;
            }
            case KernelId.BiasAddBf16:
            {
                int rows = a[2].AsI32, cols = a[3].AsI32;
                var y = d.Bf(a[0].AsPtr, (long)rows * cols); var bias = d.Bf(a[1].AsPtr, cols);
                for (int i = 0; i < rows * cols; i++) y[i] = y[i] + bias[i % cols];
                break;
            }
            case KernelId.ColumnSumBf16:
            {
                int rows = a[2].AsI32, cols = a[3].AsI32;
                var src = d.Bf(a[1].AsPtr, (long)rows * cols); var dst = d.F32(a[0].AsPtr, cols);
                for (int c = 0; c < cols; c++)
                {
                    float acc = 0;
                    for (int r = 0; r < rows; r++) acc += src[r * cols + c];
                    dst[c] += acc;
                }
                break;
            }
            case KernelId.ReduceSumF32:
            {
                long n = a[2].AsI64;
                var inp = d.F32(a[1].AsPtr, n);
                float acc = 0;
                for (int i = 0; i < n; i++) acc += inp[i];
                d.F32(a[0].AsPtr, 1)[0] = acc * a[3].AsF32;
                break;
            }
            case KernelId.EmbeddingForward:
            {
                int n = a[3].AsI32, c = a[4].AsI32, v = a[5].AsI32;
                var ids = d.I32(a[1].AsPtr, n).ToArray(); var o = d.Bf(a[0].AsPtr, (long)n * c); var wte = d.Bf(a[2].AsPtr, (long)v * c);
                for (int r = 0; r < n; r++)
                {
                    int id = ids[r];
                    for (int j = 0; j < c; j++)
                        if ((uint)id < (uint)v) o.CopyElement(r * c + j, wte, id * c + j);
                        else o[r * c + j] = float.NaN;
                }
                break;
            }
            case KernelId.EmbeddingBackward:
            {
                int n = a[3].AsI32, c = a[4].AsI32, v = a[5].AsI32;
                var ids = d.I32(a[2].AsPtr, n).ToArray(); var dw = d.F32(a[0].AsPtr, (long)v * c); var dout = d.Bf(a[1].AsPtr, (long)n * c);
                for (int r = 0; r < n; r++)
                    if ((uint)ids[r] < (uint)v)
                        for (int j = 0; j < c; j++) dw[ids[r] * c + j] += dout[r * c + j];
                break;
            }
            case KernelId.RmsNormForward:
                RmsNorm(d, outp: a[0].AsPtr, rstdPtr: a[1].AsPtr, inp: a[2].AsPtr, weight: a[3].AsPtr, n: a[4].AsI32, c: a[5].AsI32, eps: a[6].AsF32);
                break;
            case KernelId.RmsNormResidualForward:
            {
                int n = a[6].AsI32, c = a[7].AsI32;
                var x = d.Bf(a[3].AsPtr, (long)n * c); var y = d.Bf(a[4].AsPtr, (long)n * c);
                var sum = new float[n * c];
                for (int i = 0; i < n * c; i++) sum[i] = x[i] + y[i];
                var res = d.Bf(a[0].AsPtr, (long)n * c);
                for (int i = 0; i < n * c; i++) res[i] = sum[i];
                RmsNorm(d, a[1].AsPtr, a[2].AsPtr, a[0].AsPtr, a[5].AsPtr, n, c, a[8].AsF32);
                break;
            }
            case KernelId.RmsNormBackward:
            {
                int n = a[5].AsI32, c = a[6].AsI32;
                bool acc = a[7].AsI32 != 0;
                var rstd = d.F32(a[4].AsPtr, n).ToArray();
                var dinp = d.Bf(a[0].AsPtr, (long)n * c); var dout = d.Bf(a[1].AsPtr, (long)n * c); var inp = d.Bf(a[2].AsPtr, (long)n * c);
                var w = d.Bf(a[3].AsPtr, c);
                for (int r = 0; r < n; r++)
                {
                    float rs = rstd[r], sum = 0;
                    for (int j = 0; j < c; j++) sum += dout[r * c + j] * w[j] * inp[r * c + j];
                    for (int j = 0; j < c; j++)
                    {
                        float g = rs * dout[r * c + j] * w[j] - inp[r * c + j] * rs * rs * rs / c * sum;
                        dinp[r * c + j] = (acc ? dinp[r * c + j] : 0f) + g;
                    }
                }
                break;
            }
            case KernelId.RmsNormBackwardWeight:
            {
                int n = a[4].AsI32, c = a[5].AsI32;
                var rstd = d.F32(a[3].AsPtr, n).ToArray(); var dw = d.F32(a[0].AsPtr, c);
                var dout = d.Bf(a[1].AsPtr, (long)n * c); var inp = d.Bf(a[2].AsPtr, (long)n * c);
                for (int j = 0; j < c; j++)
                {
                    float acc = 0;
                    for (int r = 0; r < n; r++) acc += dout[r * c + j] * inp[r * c + j] * rstd[r];
                    dw[j] += acc;
                }
                break;
            }
            case KernelId.RopeForward or KernelId.RopeBackward:
            {
                int b = a[2].AsI32, t = a[3].AsI32, heads = a[4].AsI32, dim = a[5].AsI32, pos0 = a[6].AsI32;
                var inv = d.F64(a[1].AsPtr, dim / 2).ToArray(); var x = d.Bf(a[0].AsPtr, (long)b * t * heads * dim);
                for (int row = 0; row < b * t; row++) RotateRow(x, row, heads, dim, pos0 + row % t, inv, k == KernelId.RopeForward ? 1 : -1);
                break;
            }
            case KernelId.RopeRows:
            {
                int n = a[3].AsI32, heads = a[4].AsI32, dim = a[5].AsI32;
                var inv = d.F64(a[1].AsPtr, dim / 2).ToArray(); var pos = d.I32(a[2].AsPtr, n).ToArray(); var x = d.Bf(a[0].AsPtr, (long)n * heads * dim);
                for (int row = 0; row < n; row++) RotateRow(x, row, heads, dim, pos[row], inv, 1);
                break;
            }
            case KernelId.KvCacheWrite:
            {
                int b = a[2].AsI32, tq = a[3].AsI32, tcap = a[4].AsI32, pos = a[5].AsI32, row = a[6].AsI32;
                if (pos + tq > tcap) throw new InvalidOperationException($"kv_cache_write: pos {pos} + Tq {tq} exceeds Tcap {tcap}");
                var cache = d.Bf(a[0].AsPtr, (long)b * tcap * row); var src = d.Bf(a[1].AsPtr, (long)b * tq * row);
                for (int bi = 0; bi < b; bi++)
                    for (int t = 0; t < tq; t++)
                        for (int c = 0; c < row; c++) cache[((long)bi * tcap + pos + t) * row + c] = src[((long)bi * tq + t) * row + c];
                break;
            }
            case KernelId.KvAppend:
            {
                int n = a[6].AsI32, cap = a[7].AsI32, row = a[8].AsI32;
                var slot = d.I32(a[4].AsPtr, n).ToArray(); var pos = d.I32(a[5].AsPtr, n).ToArray();
                long slots = slot.DefaultIfEmpty(-1).Max() + 1;
                var kc = d.Bf(a[0].AsPtr, slots * cap * row); var vc = d.Bf(a[1].AsPtr, slots * cap * row);
                var kn = d.Bf(a[2].AsPtr, (long)n * row); var vn = d.Bf(a[3].AsPtr, (long)n * row);
                for (int r = 0; r < n; r++)
                {
                    if (slot[r] < 0 || (uint)pos[r] >= (uint)cap) throw new InvalidOperationException($"kv_append row {r}: slot {slot[r]}, position {pos[r]} outside the cache");
                    for (int c = 0; c < row; c++)
                    {
                        long at = ((long)slot[r] * cap + pos[r]) * row + c;
                        kc[at] = kn[(long)r * row + c];
                        vc[at] = vn[(long)r * row + c];
                    }
                }
                break;
            }
            case KernelId.DecodeAttention:
                EmulatedAttention.Decode(d, a);
                break;
            case KernelId.SwiGluForward:
            {
                int n = a[3].AsI32, inter = a[4].AsI32;
                var sp = Step(d, a[5].AsPtr);
                float p = sp.PMask;
                var rs = new RandomStream(sp.MaskSeed, sp.MaskStep, sp.MaskMicroBatch);
                uint layer = a[6].AsU32;
                long count = (long)n * inter;
                var o = d.Bf(a[0].AsPtr, count); var gate = d.Bf(a[1].AsPtr, count); var up = d.Bf(a[2].AsPtr, count);
                for (long e = 0; e < count; e++)
                {
                    float keep = p > 0 && rs.Uniform(RandomStream.TagFfnMask, layer, (uint)e) < p ? 0f : 1f;
                    float g = gate[e], sg = 1f / (1f + MathF.Exp(-g));
                    o[e] = g * sg * up[e] * keep;
                }
                break;
            }
            case KernelId.SwiGluBackward:
            {
                int n = a[5].AsI32, inter = a[6].AsI32;
                var sp = Step(d, a[7].AsPtr);
                float p = sp.PMask;
                var rs = new RandomStream(sp.MaskSeed, sp.MaskStep, sp.MaskMicroBatch);
                uint layer = a[8].AsU32;
                long count = (long)n * inter;
                var dg = d.Bf(a[0].AsPtr, count); var du = d.Bf(a[1].AsPtr, count); var da = d.Bf(a[2].AsPtr, count);
                var gate = d.Bf(a[3].AsPtr, count); var up = d.Bf(a[4].AsPtr, count);
                for (long e = 0; e < count; e++)
                {
                    float keep = p > 0 && rs.Uniform(RandomStream.TagFfnMask, layer, (uint)e) < p ? 0f : 1f;
                    float g = gate[e], u = up[e], dd = da[e] * keep, sg = 1f / (1f + MathF.Exp(-g));
                    dg[e] = dd * u * sg * (1f + g * (1f - sg));
                    du[e] = dd * g * sg;
                }
                break;
            }
            case KernelId.LoraDropoutApply:
            {
                int n = a[2].AsI32, inDim = a[3].AsI32;
                float p = a[5].AsPtr.IsNull ? 0f : a[4].AsF32; // no StepParams: no stream, no dropout
                var rs = DropoutStream(d, a[5].AsPtr);
                uint lane = a[6].AsU32 * 8 + a[7].AsU32;
                bool acc = a[8].AsI32 != 0;
                long count = (long)n * inDim;
                var o = d.Bf(a[0].AsPtr, count); var x = d.Bf(a[1].AsPtr, count);
                for (long e = 0; e < count; e++) o[e] = (acc ? o[e] : 0f) + Dropped(x[e], rs, lane, e, p);
                break;
            }
            case KernelId.LoraDropoutShrink:
            {
                int n = a[3].AsI32, inDim = a[4].AsI32, r = a[5].AsI32;
                float p = a[7].AsPtr.IsNull ? 0f : a[6].AsF32;
                var rs = DropoutStream(d, a[7].AsPtr);
                uint lane = a[8].AsU32 * 8 + a[9].AsU32;
                var t = d.Bf(a[0].AsPtr, (long)n * r); var x = d.Bf(a[1].AsPtr, (long)n * inDim); var A = d.Bf(a[2].AsPtr, (long)r * inDim);
                var xd = new float[inDim];
                for (int row = 0; row < n; row++)
                {
                    // xd is staged in shared memory as bf16: rounded (kept exact in exact mode).
                    for (int c = 0; c < inDim; c++)
                    {
                        float v = Dropped(x[row * inDim + c], rs, lane, row * inDim + c, p);
                        xd[c] = d.ExactBf16 ? v : Round(v);
                    }
                    for (int q = 0; q < r; q++)
                    {
                        float acc = 0;
                        for (int c = 0; c < inDim; c++) acc += xd[c] * A[q * inDim + c];
                        t[row * r + q] = acc;
                    }
                }
                break;
            }
            case KernelId.BgmvShrink:
            {
                int n = a[4].AsI32;
                MultiLoraShrink(d, a[0].AsPtr, a[1].AsPtr, a[2].AsPtr, d.I32(a[3].AsPtr, n).ToArray(), a[5].AsI32, a[6].AsI32, a[7].AsI64);
                break;
            }
            case KernelId.BgmvExpand:
            {
                int n = a[5].AsI32;
                MultiLoraExpand(d, a[0].AsPtr, a[1].AsPtr, a[2].AsPtr, a[3].AsPtr, d.I32(a[4].AsPtr, n).ToArray(), a[6].AsI32, a[7].AsI32, a[8].AsI64, a[9].AsI32);
                break;
            }
            case KernelId.SgmvShrink:
                MultiLoraShrink(d, a[0].AsPtr, a[1].AsPtr, a[2].AsPtr, SegmentRows(d, a[3].AsPtr, a[4].AsPtr, a[5].AsI32), a[6].AsI32, a[7].AsI32, a[8].AsI64);
                break;
            case KernelId.SgmvExpand:
                MultiLoraExpand(d, a[0].AsPtr, a[1].AsPtr, a[2].AsPtr, a[3].AsPtr, SegmentRows(d, a[4].AsPtr, a[5].AsPtr, a[6].AsI32), a[7].AsI32, a[8].AsI32, a[9].AsI64, a[10].AsI32);
                break;
            case KernelId.CrossEntropyFusedBf16 or KernelId.CrossEntropyFusedF32:
                CrossEntropy(d, k == KernelId.CrossEntropyFusedBf16, a[0].AsPtr, a[1].AsPtr, a[2].AsPtr, a[3].AsI32, a[4].AsI32, Step(d, a[5].AsPtr).LossScale);
                break;
            case KernelId.ArgmaxRowsF32:
            {
                int n = a[2].AsI32, v = a[3].AsI32;
                var z = d.F32(a[1].AsPtr, (long)n * v).ToArray();
                var o = d.I32(a[0].AsPtr, n);
                for (int r = 0; r < n; r++)
                {
                    int best = 0;
                    for (int j = 1; j < v; j++) if (z[r * v + j] > z[r * v + best]) best = j;
                    o[r] = best;
                }
                break;
            }
            case KernelId.AdamWStep:
            {
                long n = a[5].AsI64;
                float lr = a[6].AsF32, b1 = a[7].AsF32, b2 = a[8].AsF32, eps = a[9].AsF32, wd = a[10].AsF32;
                int step = a[11].AsI32;
                float scale = a[12].AsPtr.IsNull ? 1f : d.F32(a[12].AsPtr, 1)[0];
                var param = d.F32(a[0].AsPtr, n); var g = d.F32(a[2].AsPtr, n); var m = d.F32(a[3].AsPtr, n); var v = d.F32(a[4].AsPtr, n);
                var pb = a[1].AsPtr.IsNull ? default : d.Bf(a[1].AsPtr, n);
                double bc1 = 1 - Math.Pow(b1, step), bc2 = 1 - Math.Pow(b2, step);
                float stepSize = (float)(lr / bc1), invSqrtBc2 = (float)(1 / Math.Sqrt(bc2)), decay = (float)(1.0 - (double)lr * wd);
                float omb1 = (float)(1.0 - b1), omb2 = (float)(1.0 - b2);
                for (int i = 0; i < n; i++)
                {
                    float gi = g[i] * scale;
                    m[i] = b1 * m[i] + omb1 * gi;
                    v[i] = b2 * v[i] + omb2 * gi * gi;
                    param[i] = param[i] * decay - stepSize * (m[i] / (MathF.Sqrt(v[i]) * invSqrtBc2 + eps));
                    if (!pb.IsEmpty) pb[i] = param[i];
                }
                break;
            }
            case KernelId.GlobalNormSquared:
            {
                long n = a[2].AsI64;
                bool acc = a[3].AsI32 != 0;
                int g = (int)s.Grid.X, bd = (int)s.Block.X;
                var partial = d.F32(a[0].AsPtr, g); var x = d.F32(a[1].AsPtr, n);
                var sums = new float[g];
                for (long i = 0; i < n; i++) sums[(int)(i % ((long)g * bd) / bd)] += x[(int)i] * x[(int)i];
                for (int blk = 0; blk < g; blk++) partial[blk] = (acc ? partial[blk] : 0f) + sums[blk];
                break;
            }
            case KernelId.GlobalNormFinalize:
            {
                int count = a[3].AsI32;
                float maxNorm = a[4].AsF32;
                var partial = d.F32(a[2].AsPtr, count);
                float sum = 0;
                for (int i = 0; i < count; i++) sum += partial[i];
                float norm = MathF.Sqrt(sum);
                d.F32(a[0].AsPtr, 1)[0] = norm;
                if (!a[1].AsPtr.IsNull)
                    d.F32(a[1].AsPtr, 1)[0] = maxNorm > 0 && float.IsFinite(norm) && norm > maxNorm ? maxNorm / (norm + 1e-6f) : 1f;
                break;
            }
            case KernelId.FlashAttentionForward or KernelId.FlashAttentionForwardD64 or KernelId.FlashAttentionForwardD128:
                EmulatedAttention.Forward(d, a);
                break;
            case KernelId.FlashAttentionBackwardPreprocess:
                EmulatedAttention.Preprocess(d, a);
                break;
            case KernelId.FlashAttentionBackwardDq or KernelId.FlashAttentionBackwardDqD64 or KernelId.FlashAttentionBackwardDqD128:
                EmulatedAttention.BackwardDq(d, a);
                break;
            case KernelId.FlashAttentionBackwardDkDv or KernelId.FlashAttentionBackwardDkDvD64 or KernelId.FlashAttentionBackwardDkDvD128:
                EmulatedAttention.BackwardDkDv(d, a);
                break;
            default:
                throw new NotSupportedException($"the emulator does not implement {KernelCatalog.Get(k).Name}");
        }
    }

    private static float[] ToArray(Bf16View v)
    {
        var r = new float[v.Length];
        for (int i = 0; i < r.Length; i++) r[i] = v[i];
        return r;
    }

    /// <summary>The per-row slot of segments (seg_start [nseg+1], seg_slot [nseg]): rows [start[i], start[i+1]) use slot[i].</summary>
    private static int[] SegmentRows(EmulatedDevice d, DevicePtr segStart, DevicePtr segSlot, int nseg)
    {
        var start = d.I32(segStart, nseg + 1).ToArray(); var slot = d.I32(segSlot, nseg).ToArray();
        var rows = new int[start[nseg]];
        for (int i = 0; i < nseg; i++)
        {
            if (start[i + 1] < start[i]) throw new InvalidOperationException($"segment {i} ends before it starts");
            Array.Fill(rows, slot[i], start[i], start[i + 1] - start[i]);
        }
        return rows;
    }

    /// <summary>t[n, j] = Σ_k x[n, k]·A[s][j, k] (fp32), A[s] at s·slotStride, for rows with slot s ≥ 0; rows of slot −1 are not written.</summary>
    private static void MultiLoraShrink(EmulatedDevice d, DevicePtr tPtr, DevicePtr xPtr, DevicePtr aPtr, int[] rowSlot, int inDim, int rmax, long slotStride)
    {
        int n = rowSlot.Length, pool = rowSlot.DefaultIfEmpty(-1).Max() + 1;
        var t = d.F32(tPtr, (long)n * rmax); var x = d.Bf(xPtr, (long)n * inDim); var A = d.Bf(aPtr, pool == 0 ? 0 : (pool - 1) * slotStride + (long)rmax * inDim);
        for (int row = 0; row < n; row++)
        {
            int s = rowSlot[row];
            if (s < 0) continue;
            for (int j = 0; j < rmax; j++)
            {
                float acc = 0;
                for (int c = 0; c < inDim; c++) acc += x[(long)row * inDim + c] * A[s * slotStride + (long)j * inDim + c];
                t[row * rmax + j] = acc;
            }
        }
    }

    /// <summary>y[n, o] = bf16(y + scaling[s·scaleStride]·Σ_j t[n, j]·B[s][o, j]), B[s] at s·slotStride, for rows with slot s ≥ 0.</summary>
    private static void MultiLoraExpand(EmulatedDevice d, DevicePtr yPtr, DevicePtr tPtr, DevicePtr bPtr, DevicePtr scalingPtr, int[] rowSlot, int outDim, int rmax,
        long slotStride, int scaleStride)
    {
        int n = rowSlot.Length, pool = rowSlot.DefaultIfEmpty(-1).Max() + 1;
        var y = d.Bf(yPtr, (long)n * outDim); var t = d.F32(tPtr, (long)n * rmax);
        var B = d.Bf(bPtr, pool == 0 ? 0 : (pool - 1) * slotStride + (long)outDim * rmax);
        var scaling = d.F32(scalingPtr, pool == 0 ? 0 : (long)(pool - 1) * scaleStride + 1);
        for (int row = 0; row < n; row++)
        {
            int s = rowSlot[row];
            if (s < 0) continue;
            for (int o = 0; o < outDim; o++)
            {
                float acc = 0;
                for (int j = 0; j < rmax; j++) acc += t[row * rmax + j] * B[s * slotStride + (long)o * rmax + j];
                y[(long)row * outDim + o] = y[(long)row * outDim + o] + scaling[s * scaleStride] * acc;
            }
        }
    }

    /// <summary>RoPE of one row's heads [heads, dim] at <paramref name="pos"/> (sign −1: the backward rotation).</summary>
    private static void RotateRow(Bf16View x, int row, int heads, int dim, int pos, double[] inv, double sign)
    {
        int half = dim / 2;
        for (int h = 0; h < heads; h++)
            for (int j = 0; j < half; j++)
            {
                double angle = pos * inv[j];
                float cs = (float)Math.Cos(angle), sn = (float)(sign * Math.Sin(angle));
                long i1 = ((long)row * heads + h) * dim + j, i2 = i1 + half;
                float x1 = x[i1], x2 = x[i2];
                x[i1] = x1 * cs - x2 * sn;
                x[i2] = x2 * cs + x1 * sn;
            }
    }

    /// <summary>The <see cref="StepParams"/> a kernel reads at <paramref name="p"/>; null: no mask, no dropout, loss scale 1.</summary>
    private static StepParams Step(EmulatedDevice d, DevicePtr p) =>
        p.IsNull ? new StepParams { LossScale = 1f } : MemoryMarshal.Read<StepParams>(d.Bytes(p, StepParams.Bytes, "StepParams"));

    private static RandomStream DropoutStream(EmulatedDevice d, DevicePtr p)
    {
        var sp = Step(d, p);
        return new RandomStream(sp.DropoutSeed, sp.DropoutStep, sp.DropoutMicroBatch);
    }

    private static float Dropped(float x, RandomStream rs, uint lane, long e, float p) =>
        p > 0 ? (rs.Uniform(RandomStream.TagLoraDropout, lane, (uint)e) < p ? 0f : x * (1f / (1f - p))) : x;

    private static void RmsNorm(EmulatedDevice d, DevicePtr outp, DevicePtr rstdPtr, DevicePtr inp, DevicePtr weight, int n, int c, float eps)
    {
        var rs = new float[n];
        var x = d.Bf(inp, (long)n * c); var w = d.Bf(weight, c);
        var y = new float[n * c];
        for (int r = 0; r < n; r++)
        {
            float ss = 0;
            for (int j = 0; j < c; j++) { float v = x[r * c + j]; ss += v * v; }
            rs[r] = 1f / MathF.Sqrt(ss / c + eps);
            for (int j = 0; j < c; j++) y[r * c + j] = x[r * c + j] * rs[r] * w[j];
        }
        var o = d.Bf(outp, (long)n * c);
        for (int i = 0; i < n * c; i++) o[i] = y[i];
        if (!rstdPtr.IsNull) rs.CopyTo(d.F32(rstdPtr, n));
    }

    private static void CrossEntropy(EmulatedDevice d, bool bf16, DevicePtr logitsPtr, DevicePtr targetsPtr, DevicePtr lossPtr, int n, int v, float scale)
    {
        var targets = d.I32(targetsPtr, n).ToArray();
        var losses = new float[n];
        var z = bf16 ? ToArray(d.Bf(logitsPtr, (long)n * v)) : d.F32(logitsPtr, (long)n * v).ToArray();
        var grad = new float[n * v];
        for (int r = 0; r < n; r++)
        {
            int y = targets[r];
            var row = z.AsSpan(r * v, v);
            var g = grad.AsSpan(r * v, v);
            if (y == -100) losses[r] = 0;
            else if ((uint)y >= (uint)v) { losses[r] = float.NaN; g.Fill(float.NaN); }
            else
            {
                float max = float.NegativeInfinity, sum = 0;
                foreach (var zj in row) max = Math.Max(max, zj);
                foreach (var zj in row) sum += MathF.Exp(zj - max);
                float lse = max + MathF.Log(sum);
                losses[r] = lse - row[y];
                for (int j = 0; j < v; j++) g[j] = MathF.Exp(row[j] - lse) * scale;
                g[y] -= scale;
            }
        }
        losses.CopyTo(d.F32(lossPtr, n));
        if (bf16) { var o = d.Bf(logitsPtr, (long)n * v); for (int i = 0; i < grad.Length; i++) o[i] = grad[i]; }
        else grad.CopyTo(d.F32(logitsPtr, (long)n * v));
    }

    /// <summary>cuBLAS's column-major GEMM, literally: C(i,j) = alpha·Σ_p op(A)(i,p)·op(B)(p,j) + beta·C(i,j), fp32
    /// accumulation, C not read when beta = 0. Bounds are checked for every operand even when not computing.</summary>
    public static void GemmColumnMajor(EmulatedDevice d, ColumnMajorGemm g, float alpha, float beta, CudaDataType abType, CudaDataType cType, bool compute)
    {
        int m = g.M, n = g.N, k = g.K;
        bool ta = g.TransA == CublasOperation.T, tb = g.TransB == CublasOperation.T;
        // Stored shapes (column-major): A is m x k (or k x m when transposed), B is k x n (or n x k).
        long aExtent = Extent(ta ? k : m, ta ? m : k, g.Lda), bExtent = Extent(tb ? n : k, tb ? k : n, g.Ldb), cExtent = Extent(m, n, g.Ldc);
        int ab = abType == CudaDataType.R16BF ? 2 : 4, cs = cType == CudaDataType.R16BF ? 2 : 4;
        d.Bytes(g.A, aExtent * ab, "GEMM operand A");
        d.Bytes(g.B, bExtent * ab, "GEMM operand B");
        d.Bytes(g.C, cExtent * cs, "GEMM output C");
        if (!compute || m == 0 || n == 0) return;
        var av = Read(d, g.A, aExtent, abType);
        var bv = Read(d, g.B, bExtent, abType);
        var cOld = beta != 0 ? Read(d, g.C, cExtent, cType) : null;
        var result = new float[cExtent];
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++)
            {
                float acc = 0;
                for (int p = 0; p < k; p++)
                {
                    float x = ta ? av[p + (long)i * g.Lda] : av[i + (long)p * g.Lda];
                    float y = tb ? bv[j + (long)p * g.Ldb] : bv[p + (long)j * g.Ldb];
                    acc += x * y;
                }
                long ci = i + (long)j * g.Ldc;
                result[ci] = alpha * acc + (cOld is null ? 0f : beta * cOld[ci]);
            }
        if (cType == CudaDataType.R16BF)
        {
            var c = d.Bf(g.C, cExtent);
            for (int j = 0; j < n; j++) for (int i = 0; i < m; i++) c[i + (long)j * g.Ldc] = result[i + (long)j * g.Ldc];
        }
        else
        {
            var c = d.F32(g.C, cExtent);
            for (int j = 0; j < n; j++) for (int i = 0; i < m; i++) c[(int)(i + (long)j * g.Ldc)] = result[i + (long)j * g.Ldc];
        }
    }

    private static long Extent(int rows, int cols, int ld) => rows == 0 || cols == 0 ? 0 : rows + (long)(cols - 1) * ld;

    private static float[] Read(EmulatedDevice d, DevicePtr p, long count, CudaDataType t) =>
        t == CudaDataType.R32F ? d.F32(p, count).ToArray() : ToArray(d.Bf(p, count));
}
