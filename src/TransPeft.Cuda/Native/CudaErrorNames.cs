using System.Collections.Frozen;

namespace TransPeft.Cuda.Native;

/// <summary>
/// Symbolic names of the status codes of the three libraries. The driver's own <c>cuGetErrorName</c> is asked
/// first (it knows codes newer than this table); the table answers when the driver cannot (a stub library, a
/// driver that failed to load). It was taken from <c>cuGetErrorName</c> of driver 535 (CUDA 12.2), and a test
/// checks it against whatever driver is present. NVRTC's <c>nvrtcGetErrorString</c> returns symbolic names
/// already; cuBLAS gets a table here because its own name function is missing from older releases.
/// </summary>
internal static class CudaErrorNames
{
    private static readonly FrozenDictionary<int, string> s_driver = new Dictionary<int, string>
    {
        [0] = "CUDA_SUCCESS",
        [1] = "CUDA_ERROR_INVALID_VALUE",
        [2] = "CUDA_ERROR_OUT_OF_MEMORY",
        [3] = "CUDA_ERROR_NOT_INITIALIZED",
        [4] = "CUDA_ERROR_DEINITIALIZED",
        [5] = "CUDA_ERROR_PROFILER_DISABLED",
        [6] = "CUDA_ERROR_PROFILER_NOT_INITIALIZED",
        [7] = "CUDA_ERROR_PROFILER_ALREADY_STARTED",
        [8] = "CUDA_ERROR_PROFILER_ALREADY_STOPPED",
        [34] = "CUDA_ERROR_STUB_LIBRARY",
        [46] = "CUDA_ERROR_DEVICE_UNAVAILABLE",
        [100] = "CUDA_ERROR_NO_DEVICE",
        [101] = "CUDA_ERROR_INVALID_DEVICE",
        [102] = "CUDA_ERROR_DEVICE_NOT_LICENSED",
        [200] = "CUDA_ERROR_INVALID_IMAGE",
        [201] = "CUDA_ERROR_INVALID_CONTEXT",
        [202] = "CUDA_ERROR_CONTEXT_ALREADY_CURRENT",
        [205] = "CUDA_ERROR_MAP_FAILED",
        [206] = "CUDA_ERROR_UNMAP_FAILED",
        [207] = "CUDA_ERROR_ARRAY_IS_MAPPED",
        [208] = "CUDA_ERROR_ALREADY_MAPPED",
        [209] = "CUDA_ERROR_NO_BINARY_FOR_GPU",
        [210] = "CUDA_ERROR_ALREADY_ACQUIRED",
        [211] = "CUDA_ERROR_NOT_MAPPED",
        [212] = "CUDA_ERROR_NOT_MAPPED_AS_ARRAY",
        [213] = "CUDA_ERROR_NOT_MAPPED_AS_POINTER",
        [214] = "CUDA_ERROR_ECC_UNCORRECTABLE",
        [215] = "CUDA_ERROR_UNSUPPORTED_LIMIT",
        [216] = "CUDA_ERROR_CONTEXT_ALREADY_IN_USE",
        [217] = "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED",
        [218] = "CUDA_ERROR_INVALID_PTX",
        [219] = "CUDA_ERROR_INVALID_GRAPHICS_CONTEXT",
        [220] = "CUDA_ERROR_NVLINK_UNCORRECTABLE",
        [221] = "CUDA_ERROR_JIT_COMPILER_NOT_FOUND",
        [222] = "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        [223] = "CUDA_ERROR_JIT_COMPILATION_DISABLED",
        [224] = "CUDA_ERROR_UNSUPPORTED_EXEC_AFFINITY",
        [225] = "CUDA_ERROR_UNSUPPORTED_DEVSIDE_SYNC",
        [300] = "CUDA_ERROR_INVALID_SOURCE",
        [301] = "CUDA_ERROR_FILE_NOT_FOUND",
        [302] = "CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND",
        [303] = "CUDA_ERROR_SHARED_OBJECT_INIT_FAILED",
        [304] = "CUDA_ERROR_OPERATING_SYSTEM",
        [400] = "CUDA_ERROR_INVALID_HANDLE",
        [401] = "CUDA_ERROR_ILLEGAL_STATE",
        [500] = "CUDA_ERROR_NOT_FOUND",
        [600] = "CUDA_ERROR_NOT_READY",
        [700] = "CUDA_ERROR_ILLEGAL_ADDRESS",
        [701] = "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
        [702] = "CUDA_ERROR_LAUNCH_TIMEOUT",
        [703] = "CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING",
        [704] = "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED",
        [705] = "CUDA_ERROR_PEER_ACCESS_NOT_ENABLED",
        [708] = "CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE",
        [709] = "CUDA_ERROR_CONTEXT_IS_DESTROYED",
        [710] = "CUDA_ERROR_ASSERT",
        [711] = "CUDA_ERROR_TOO_MANY_PEERS",
        [712] = "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
        [713] = "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
        [714] = "CUDA_ERROR_HARDWARE_STACK_ERROR",
        [715] = "CUDA_ERROR_ILLEGAL_INSTRUCTION",
        [716] = "CUDA_ERROR_MISALIGNED_ADDRESS",
        [717] = "CUDA_ERROR_INVALID_ADDRESS_SPACE",
        [718] = "CUDA_ERROR_INVALID_PC",
        [719] = "CUDA_ERROR_LAUNCH_FAILED",
        [720] = "CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE",
        [800] = "CUDA_ERROR_NOT_PERMITTED",
        [801] = "CUDA_ERROR_NOT_SUPPORTED",
        [802] = "CUDA_ERROR_SYSTEM_NOT_READY",
        [803] = "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
        [804] = "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
        [805] = "CUDA_ERROR_MPS_CONNECTION_FAILED",
        [806] = "CUDA_ERROR_MPS_RPC_FAILURE",
        [807] = "CUDA_ERROR_MPS_SERVER_NOT_READY",
        [808] = "CUDA_ERROR_MPS_MAX_CLIENTS_REACHED",
        [809] = "CUDA_ERROR_MPS_MAX_CONNECTIONS_REACHED",
        [810] = "CUDA_ERROR_MPS_CLIENT_TERMINATED",
        [811] = "CUDA_ERROR_CDP_NOT_SUPPORTED",
        [812] = "CUDA_ERROR_CDP_VERSION_MISMATCH",
        [900] = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
        [901] = "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
        [902] = "CUDA_ERROR_STREAM_CAPTURE_MERGE",
        [903] = "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED",
        [904] = "CUDA_ERROR_STREAM_CAPTURE_UNJOINED",
        [905] = "CUDA_ERROR_STREAM_CAPTURE_ISOLATION",
        [906] = "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
        [907] = "CUDA_ERROR_CAPTURED_EVENT",
        [908] = "CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
        [909] = "CUDA_ERROR_TIMEOUT",
        [910] = "CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE",
        [911] = "CUDA_ERROR_EXTERNAL_DEVICE",
        [912] = "CUDA_ERROR_INVALID_CLUSTER_SIZE",
        [999] = "CUDA_ERROR_UNKNOWN",
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<int, string> s_cublas = new Dictionary<int, string>
    {
        [0] = "CUBLAS_STATUS_SUCCESS",
        [1] = "CUBLAS_STATUS_NOT_INITIALIZED",
        [3] = "CUBLAS_STATUS_ALLOC_FAILED",
        [7] = "CUBLAS_STATUS_INVALID_VALUE",
        [8] = "CUBLAS_STATUS_ARCH_MISMATCH",
        [11] = "CUBLAS_STATUS_MAPPING_ERROR",
        [13] = "CUBLAS_STATUS_EXECUTION_FAILED",
        [14] = "CUBLAS_STATUS_INTERNAL_ERROR",
        [15] = "CUBLAS_STATUS_NOT_SUPPORTED",
        [16] = "CUBLAS_STATUS_LICENSE_ERROR",
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<int, string> s_nvrtc = new Dictionary<int, string>
    {
        [0] = "NVRTC_SUCCESS",
        [1] = "NVRTC_ERROR_OUT_OF_MEMORY",
        [2] = "NVRTC_ERROR_PROGRAM_CREATION_FAILURE",
        [3] = "NVRTC_ERROR_INVALID_INPUT",
        [4] = "NVRTC_ERROR_INVALID_PROGRAM",
        [5] = "NVRTC_ERROR_INVALID_OPTION",
        [6] = "NVRTC_ERROR_COMPILATION",
        [7] = "NVRTC_ERROR_BUILTIN_OPERATION_FAILURE",
        [8] = "NVRTC_ERROR_NO_NAME_EXPRESSIONS_AFTER_COMPILATION",
        [9] = "NVRTC_ERROR_NO_LOWERED_NAMES_BEFORE_COMPILATION",
        [10] = "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID",
        [11] = "NVRTC_ERROR_INTERNAL_ERROR",
    }.ToFrozenDictionary();

    /// <summary>The table's name for a driver code, or <c>CUDA_ERROR_&lt;code&gt;</c> when the table lacks it.</summary>
    public static string DriverFromTable(int code) => s_driver.TryGetValue(code, out var n) ? n : $"CUDA_ERROR_{code}";

    public static bool DriverTableHas(int code) => s_driver.ContainsKey(code);

    public static IEnumerable<int> DriverTableCodes => s_driver.Keys;

    public static string Cublas(int code) => s_cublas.TryGetValue(code, out var n) ? n : $"CUBLAS_STATUS_{code}";

    public static string NvrtcFromTable(int code) => s_nvrtc.TryGetValue(code, out var n) ? n : $"NVRTC_ERROR_{code}";
}
