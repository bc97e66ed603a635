// A CUDA emulator for testing minisinga's CUDA code on a machine without a GPU.
//
// `MINISINGA_CUDA=emu` builds _core with csrc/**/*.cu compiled by the host C++ compiler
// against these headers instead of the CUDA toolkit's: every `kernel<<<grid, block, smem,
// stream>>>(args)` is rewritten (launches.py) into msemu::Launch, which runs the kernel's
// threads on the CPU, block by block, each thread a fiber switched at the barriers
// (__syncthreads, warp shuffles); `__shared__` variables are statics, which is right because
// one block runs at a time. The runtime (runtime.cc) keeps the
// semantics the code relies on and checks what a GPU would refuse: launch configurations,
// copy directions and bounds against the live allocations, cuBLAS leading dimensions,
// stream-capture rules (no host copies, syncs or cudaMalloc while capturing; captured work
// runs only when the graph is launched). cuBLAS GEMMs run in OpenBLAS.
//
// What it can say of speed: with MSEMU_MEMTRACE=1 (build) and MSEMU_MEMSTATS=FILE (run), each
// launch's memory traffic as a GPU would issue it (warp requests, 32-byte sectors; see
// runtime.cc and mem_table.py, which estimates kernel and GEMM times from it).
// What it cannot show: measured speed, races with the host (everything runs in order,
// synchronously), races between threads other than by their results differing between the
// two schedules (MSEMU_SCHEDULE=reverse runs blocks and fibers last to first), the device's float rounding where it differs from the host's
// (expf, logf, fused multiply-adds), TF32 (GEMMs are exact float32), and bugs in device-only
// branches (`#ifdef __CUDA_ARCH__`).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#define MS_CUDA_EMU 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};

// ---- runtime API (the subset minisinga uses; values as in the CUDA headers) ----

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,
  cudaErrorLaunchFailure = 719,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
};
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
constexpr unsigned cudaStreamNonBlocking = 1;

typedef struct MsEmuStream* cudaStream_t;
typedef struct MsEmuEvent* cudaEvent_t;
typedef struct MsEmuGraph* cudaGraph_t;
typedef struct MsEmuGraphExec* cudaGraphExec_t;

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int id);
cudaError_t cudaGetDevice(int* id);
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };
// Multiprocessors: $MSEMU_SMS, else 132 (an H100's), so plans match the real GPU's.
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
// The fields minisinga reads: name "minisinga CUDA emulator", compute capability 9.0, the
// multiprocessors above, and MSEMU_MEMORY_BYTES of memory (free: what cudaMalloc has not taken).
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor, multiProcessorCount;
};
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaMemGetInfo(size_t* free, size_t* total);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <typename T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t s = nullptr);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t n);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop);

// ---- cuBLAS (column-major, host pointer mode) ----

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_ALLOC_FAILED = 3,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_ARCH_MISMATCH = 8,
  CUBLAS_STATUS_MAPPING_ERROR = 11,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_INTERNAL_ERROR = 14,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
  CUBLAS_STATUS_LICENSE_ERROR = 16,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };
enum cublasMath_t { CUBLAS_DEFAULT_MATH = 0, CUBLAS_TF32_TENSOR_OP_MATH = 3 };
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
typedef struct MsEmuBlas* cublasHandle_t;

cublasStatus_t cublasCreate(cublasHandle_t* h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* workspace, size_t bytes);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float* alpha, const float* A, int lda,
                           const float* B, int ldb, const float* beta, float* C, int ldc);
cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long stride_a, const float* B, int ldb,
                                         long long stride_b, const float* beta, float* C,
                                         int ldc, long long stride_c, int batch);
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType_t at,
                                          int lda, long long stride_a, const void* B,
                                          cudaDataType_t bt, int ldb, long long stride_b,
                                          const void* beta, void* C, cudaDataType_t ct, int ldc,
                                          long long stride_c, int batch,
                                          cublasComputeType_t compute, cublasGemmAlgo_t algo);

// ---- float16 ----

struct __half {
  unsigned short x;
};
namespace msemu {
float HalfToFloat(unsigned short h);
unsigned short FloatToHalf(float f);  // round to nearest even
}  // namespace msemu
inline float __half2float(__half h) { return msemu::HalfToFloat(h.x); }
inline __half __float2half_rn(float f) { return __half{msemu::FloatToHalf(f)}; }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline __half __ushort_as_half(unsigned short v) { return __half{v}; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }

// ---- kernel side ----

namespace msemu {

// The running thread's coordinates (one kernel runs at a time, see runtime.cc).
extern uint3 g_threadIdx, g_blockIdx;
extern dim3 g_blockDim, g_gridDim;

void SyncThreads();
// Lane `src` of the calling thread's warp gets `bytes` of `in` from every lane.
void WarpShuffle(const void* in, void* out, size_t bytes, int src);
int LaneId();

struct Config {
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  Config(dim3 g, dim3 b, size_t sm = 0, cudaStream_t s = nullptr)
      : grid(g), block(b), smem(sm), stream(s) {}
};

// For the stand-ins of other libraries (cub): run `work` on stream `s` (or record it while the
// stream captures), check that a range is device memory, fail a call as the runtime does.
void EnqueueWork(cudaStream_t s, std::function<void()> work);
bool IsDeviceRange(const void* p, size_t bytes);
cudaError_t FailCall(cudaError_t e, const char* what);

// Runs (or records, while the stream captures) a launch of thread_body; `site` names it.
// `args`: its integer arguments, for the trace (empty when not tracing).
void Submit(const Config& c, std::function<void()> thread_body, const char* site,
            const std::string& args = {});
bool Tracing();  // $MSEMU_TRACE is set

// An argument for the trace: integers as numbers, a null pointer as "null", a plan's numel and
// ndim as n<numel>/<ndim>, a functor by its (mangled) type name, anything else as "_".
template <typename T, typename = void>
struct HasNumel : std::false_type {};
template <typename T>
struct HasNumel<T, std::void_t<decltype(T::numel), decltype(T::ndim)>> : std::true_type {};
template <typename T>
std::string TraceArg(const T& v) {
  if constexpr (std::is_integral_v<T>) return std::to_string(v);
  else if constexpr (std::is_pointer_v<T>) return v ? "_" : "null";
  else if constexpr (HasNumel<T>::value)
    return "n" + std::to_string(v.numel) + "/" + std::to_string(v.ndim);
  else if constexpr (std::is_empty_v<T>) return typeid(T).name();
  else return "_";
}

// `kernel` is a generic lambda calling the kernel by name (so template arguments are deduced
// as in the original launch); the arguments are copied now, as a CUDA launch copies them.
// `name` is the kernel expression as the launch wrote it.
template <typename K, typename... A>
void Launch(const Config& c, const char* name, K kernel, A&&... args) {
  std::string traced;
  if (Tracing()) ((traced += TraceArg(static_cast<const std::decay_t<A>&>(args)) + " "), ...);
  auto tup = std::make_tuple(std::decay_t<A>(std::forward<A>(args))...);
  Submit(c, [kernel, tup]() { std::apply(kernel, tup); }, name, traced);
}

}  // namespace msemu

#define threadIdx (::msemu::g_threadIdx)
#define blockIdx (::msemu::g_blockIdx)
#define blockDim (::msemu::g_blockDim)
#define gridDim (::msemu::g_gridDim)

inline void __syncthreads() { msemu::SyncThreads(); }

namespace msemu {
// The value of lane `src` of the caller's warp; outside the caller's `width`-lane group the
// caller keeps its own value, as on the GPU.
template <typename T>
T ShuffleFrom(T v, int src, int width) {
  const int lane = LaneId();
  if ((src & ~(width - 1)) != (lane & ~(width - 1))) src = lane;
  T out;
  WarpShuffle(&v, &out, sizeof(T), src);
  return out;
}
}  // namespace msemu

template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
  return msemu::ShuffleFrom(v, msemu::LaneId() ^ lane_mask, width);
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
  return msemu::ShuffleFrom(v, msemu::LaneId() + static_cast<int>(delta), width);
}
template <typename T>
T __shfl_sync(unsigned, T v, int src_lane, int width = 32) {
  return msemu::ShuffleFrom(v, (msemu::LaneId() & ~(width - 1)) + (src_lane & (width - 1)),
                            width);
}

// Threads never run at the same time, so read-modify-write is atomic.
template <typename T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicMax(T* p, T v) {
  const T old = *p;
  *p = old < v ? v : old;
  return old;
}
template <typename T>
T atomicMin(T* p, T v) {
  const T old = *p;
  *p = v < old ? v : old;
  return old;
}
template <typename T>
T atomicCAS(T* p, T cmp, T v) {
  const T old = *p;
  if (old == cmp) *p = v;
  return old;
}
template <typename T>
T atomicExch(T* p, T v) {
  const T old = *p;
  *p = v;
  return old;
}

template <typename To, typename From>
inline To msemu_bits(From v) {
  static_assert(sizeof(To) == sizeof(From), "same size");
  To t;
  std::memcpy(&t, &v, sizeof(To));
  return t;
}
inline float __int_as_float(int v) { return msemu_bits<float>(v); }
inline float __uint_as_float(unsigned v) { return msemu_bits<float>(v); }
inline int __float_as_int(float v) { return msemu_bits<int>(v); }
inline unsigned __float_as_uint(float v) { return msemu_bits<unsigned>(v); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32);
}
