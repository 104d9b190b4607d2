using TransPeft.Cuda.Compile;

namespace TransPeft.Engine.Tests.Cuda;

/// <summary>Small kernels of the tests' own, with resource usage that is known in advance.</summary>
internal static class TestKernels
{
    /// <summary>A prelude in the style of kernels/prelude.cuh: own typedefs, no toolkit header.</summary>
    public static readonly KernelHeader Prelude = new("prelude.cuh", """
        #pragma once
        typedef unsigned int u32;
        __device__ __forceinline__ float twice(float x) { return 2.0f * x; }
        """);

    /// <summary>
    /// tile_reverse: a static __shared__ array of 256 floats (exactly 1024 bytes), __launch_bounds__(256), three
    /// parameters (8 + 8 + 4 = 20 bytes). out[i] = 2 * in[block_start + 255 - t].
    /// scale_add: out[i] = a * x[i] + y[i], a grid-stride loop (for launches on a GPU).
    /// </summary>
    public const string Source = """
        #include "prelude.cuh"

        extern "C" __global__ void __launch_bounds__(256) tile_reverse(float* out, const float* in, int n)
        {
            __shared__ float tile[256];
            u32 t = threadIdx.x;
            int i = blockIdx.x * 256 + t;
            tile[t] = i < n ? in[i] : 0.0f;
            __syncthreads();
            if (i < n) out[i] = twice(tile[255 - t]);
        }

        extern "C" __global__ void scale_add(float* out, const float* x, const float* y, float a, long long n)
        {
            for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
                out[i] = a * x[i] + y[i];
        }
        """;

    /// <summary>A 256-float local array indexed at run time cannot live in registers: a stack frame of at least 1 KiB.</summary>
    public const string LocalArraySource = """
        extern "C" __global__ void local_array(float* o, const int* idx)
        {
            float loc[256];
            for (int j = 0; j < 256; j++) loc[j] = o[j] * 2.0f;
            loc[idx[threadIdx.x] & 255] += 1.0f;
            o[threadIdx.x] = loc[idx[threadIdx.x + 32] & 255];
        }
        """;

    /// <summary>48 live values per thread: with --maxrregcount=32 ptxas must spill.</summary>
    public const string PressureSource = """
        extern "C" __global__ void pressure(float* o, const float* a, int n)
        {
            float v[48];
            #pragma unroll
            for (int j = 0; j < 48; j++) v[j] = a[j * n + threadIdx.x];
            float acc = 0.0f;
            #pragma unroll
            for (int r = 0; r < 8; r++) {
                #pragma unroll
                for (int j = 0; j < 48; j++) acc += v[j] * v[(j * 7 + r) % 48];
                #pragma unroll
                for (int j = 0; j < 48; j++) v[j] = v[j] * acc + a[j];
            }
            o[threadIdx.x] = acc;
        }
        """;

    public const string TemplateSource = """
        template <int N>
        __global__ void fill(float* out) { out[threadIdx.x] = (float)N; }
        """;
}
