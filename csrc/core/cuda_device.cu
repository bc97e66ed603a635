// CudaGPU (see cuda_device.h for the CUDA-graph replay design) and the CUDA half of the
// device registry that device.cc leaves to CUDA builds.
#include "core/cuda_device.h"

#include <cstring>
#include <mutex>
#include <vector>

#include "core/cuda_check.h"
#include "core/graph.h"

namespace minisinga {

namespace {

constexpr size_t kBlasWorkspace = size_t{32} << 20;  // cuBLAS's recommendation for Hopper
// Hold-mode replays before the capture (see cuda_device.h): the first allocates what outlives
// a run, the second repeats exactly what the captured one will allocate.
constexpr int kWarmRuns = 2;

cudaStream_t StreamOf(const Context& ctx) { return static_cast<cudaStream_t>(ctx.stream); }

// Hold mode for the length of a scope (exception-safe).
class HoldScope {
 public:
  explicit HoldScope(CachingPool* pool) : pool_(pool) { pool_->SetHold(true); }
  ~HoldScope() { pool_->SetHold(false); }
  HoldScope(const HoldScope&) = delete;
  HoldScope& operator=(const HoldScope&) = delete;

 private:
  CachingPool* pool_;
};

// Two events around a closure; destroyed even when the closure throws.
class EventPair {
 public:
  EventPair() {
    MS_CUDA_CHECK(cudaEventCreate(&start));
    if (cudaEventCreate(&stop) != cudaSuccess) {
      (void)cudaGetLastError();
      (void)cudaEventDestroy(start);
      MS_FAIL("TimeOp: cudaEventCreate failed");
    }
  }
  ~EventPair() {
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  cudaEvent_t start = nullptr, stop = nullptr;
};

__global__ void SetRngStateKernel(CudaRngState* s, uint64_t seed, uint64_t delta) {
  s->seed = seed;
  s->delta = delta;
}

}  // namespace

CudaGPU::CudaGPU(int id) : Device(DeviceType::kCuda, id) {
  MS_CUDA_CHECK(cudaSetDevice(id));
  MS_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, id));
  cudaStream_t stream = nullptr;
  MS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  ctx_.stream = stream;
  cublasHandle_t handle = nullptr;
  MS_CUBLAS_CHECK(cublasCreate(&handle));
  ctx_.blas = handle;
  // cublasSetStream drops a user workspace, so the workspace is set after it. With its own
  // workspace cuBLAS never allocates inside a GEMM, which CUDA-graph capture requires.
  MS_CUBLAS_CHECK(cublasSetStream(handle, stream));
  MS_CUDA_CHECK(cudaMalloc(&blas_workspace_, kBlasWorkspace));
  MS_CUBLAS_CHECK(cublasSetWorkspace(handle, blas_workspace_, kBlasWorkspace));
  MS_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  void* rng = nullptr;
  MS_CUDA_CHECK(cudaMalloc(&rng, sizeof(CudaRngState)));
  rng_state_ = static_cast<CudaRngState*>(rng);
  // On the device's stream, as everything else (cudaMemset would use the legacy default one).
  MS_CUDA_CHECK(cudaMemsetAsync(rng_state_, 0, sizeof(CudaRngState), StreamOf(ctx_)));
  InitPool();
}

void CudaGPU::Activate() const {
  int cur = -1;
  MS_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != id_) MS_CUDA_CHECK(cudaSetDevice(id_));
}

void CudaGPU::CheckNotCapturing(const char* what) const {
  if (capturing_)
    MS_FAIL(name() << ": " << what
                   << " cannot be part of a captured CUDA graph (it needs the host or "
                      "new memory at every run)");
}

void* CudaGPU::RawMalloc(size_t bytes) {
  CheckNotCapturing("cudaMalloc");
  Activate();
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {  // the pool frees its cache and retries once
    (void)cudaGetLastError();
    return nullptr;
  }
  MS_CUDA_CHECK(err);
  return p;
}

void CudaGPU::RawFree(void* p) {
  Activate();
  MS_CUDA_CHECK(cudaFree(p));
}

void CudaGPU::CopyToHost(void* dst, const void* src, size_t n) {
  CheckNotCapturing("a device-to-host copy");
  if (n == 0) return;
  Activate();
  MS_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, StreamOf(ctx_)));
  MS_CUDA_CHECK(cudaStreamSynchronize(StreamOf(ctx_)));
  CheckFaults();
}

void CudaGPU::CopyFromHost(void* dst, const void* src, size_t n) {
  CheckNotCapturing("a host-to-device copy");
  if (n == 0) return;
  Activate();
  MS_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, StreamOf(ctx_)));
  // The source may be freed as soon as this returns.
  MS_CUDA_CHECK(cudaStreamSynchronize(StreamOf(ctx_)));
}

void CudaGPU::CopyOnDevice(void* dst, const void* src, size_t n) {
  if (n == 0 || dst == src) return;
  Activate();
  const char* d = static_cast<const char*>(dst);
  const char* s = static_cast<const char*>(src);
  if (d < s + n && s < d + n) {  // overlapping ranges (memmove semantics): via scratch
    void* tmp = Malloc(n);
    try {
      MS_CUDA_CHECK(cudaMemcpyAsync(tmp, src, n, cudaMemcpyDeviceToDevice, StreamOf(ctx_)));
      MS_CUDA_CHECK(cudaMemcpyAsync(dst, tmp, n, cudaMemcpyDeviceToDevice, StreamOf(ctx_)));
    } catch (...) {
      Free(tmp, n);
      throw;
    }
    Free(tmp, n);  // stream order keeps the copies ahead of any reuse
    return;
  }
  MS_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, StreamOf(ctx_)));
}

void CudaGPU::Memset(void* dst, unsigned char byte, size_t n) {
  if (n == 0) return;
  Activate();
  MS_CUDA_CHECK(cudaMemsetAsync(dst, byte, n, StreamOf(ctx_)));
}

void CudaGPU::Sync() {
  CheckNotCapturing("a stream synchronisation");
  Activate();
  MS_CUDA_CHECK(cudaStreamSynchronize(StreamOf(ctx_)));
  CheckFaults();
}

double CudaGPU::TimeOp(const Fn& fn) {
  Activate();
  EventPair ev;
  MS_CUDA_CHECK(cudaEventRecord(ev.start, StreamOf(ctx_)));
  fn(&ctx_);
  MS_CUDA_CHECK(cudaEventRecord(ev.stop, StreamOf(ctx_)));
  MS_CUDA_CHECK(cudaEventSynchronize(ev.stop));
  float ms = 0.f;
  MS_CUDA_CHECK(cudaEventElapsedTime(&ms, ev.start, ev.stop));
  return ms * 1e-3;
}

void CudaGPU::SetAllowTF32(bool allow) {
  if (allow == allow_tf32_) return;
  Activate();
  DropCapture();  // a captured graph keeps the math mode it was captured with
  MS_CUBLAS_CHECK(cublasSetMathMode(static_cast<cublasHandle_t>(ctx_.blas),
                                    allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  allow_tf32_ = allow;
}

void CudaGPU::SetCudaGraph(bool enable) {
  if (!enable) DropCapture();
  cuda_graph_enabled_ = enable;
}

// ---- CUDA-graph replay ----

void CudaGPU::DropCapture() {
  if (exec_ != nullptr || warm_runs_ > 0) {
    Sync();  // nothing of the captured graph may still be running
    if (exec_ != nullptr) MS_CUDA_CHECK(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_)));
    pool_->ReleaseHeld();
  }
  exec_ = nullptr;
  warm_runs_ = 0;
  failed_ = false;
  failure_.clear();
}

void CudaGPU::ResetGraph() {
  CheckNotReplaying("ResetGraph");
  DropCapture();
  Device::ResetGraph();
}

bool CudaGPU::ReplayGraph(Graph& graph) {
  if (graph.version() != key_version_ || graph.plan_sequential() != key_sequential_) {
    DropCapture();  // a new recording or another order: a new plan
    key_version_ = graph.version();
    key_sequential_ = graph.plan_sequential();
  }
  if (!cuda_graph_enabled_ || failed_ || verbosity() > 0 || graph.has_host_nodes() ||
      graph.size() == 0)
    return false;
  Activate();
  if (exec_ != nullptr) {
    Launch();
    return true;
  }
  if (warm_runs_ < kWarmRuns) {  // runs 1, 2: plain replays, freed memory kept for the graph
    HoldScope hold(pool_.get());
    graph.Replay(this);
    warm_runs_++;
    return true;
  }
  return Capture(graph);
}

bool CudaGPU::Capture(Graph& graph) {
  cudaStream_t stream = StreamOf(ctx_);
  const uint64_t base = ctx_.rng_offset;
  std::string why;
  cudaGraph_t captured = nullptr;
  {
    HoldScope hold(pool_.get());
    cudaError_t err = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) {
      why = std::string("cudaStreamBeginCapture: ") + cudaGetErrorString(err);
    } else {
      capturing_ = true;
      try {
        graph.Replay(this);
      } catch (const std::exception& e) {
        why = e.what();
      }
      capturing_ = false;
      err = cudaStreamEndCapture(stream, &captured);
      if (err != cudaSuccess && why.empty())
        why = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(err);
    }
  }
  (void)cudaGetLastError();  // capture errors are not sticky: clear them
  cudaGraphExec_t exec = nullptr;
  if (why.empty()) {
    const cudaError_t err = cudaGraphInstantiate(&exec, captured, 0);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      why = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(err);
      exec = nullptr;
    }
  }
  if (captured != nullptr) (void)cudaGraphDestroy(captured);
  const uint64_t used = ctx_.rng_offset - base;
  ctx_.rng_offset = base;  // nothing captured has run yet
  if (!why.empty()) {
    // Nothing of the capture ran: Graph::Run now does a plain replay, and so will later runs.
    failed_ = true;
    failure_ = why;
    pool_->ReleaseHeld();
    return false;
  }
  exec_ = exec;
  rng_base_ = base;
  rng_used_ = used;
  Launch();
  return true;
}

void CudaGPU::Launch() {
  cudaStream_t stream = StreamOf(ctx_);
  if (rng_used_ > 0) {
    SetRngStateKernel<<<1, 1, 0, stream>>>(rng_state_, ctx_.seed, ctx_.rng_offset - rng_base_);
    MS_CUDA_LAUNCH_CHECK("SetRngStateKernel");
  }
  MS_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), stream));
  ctx_.rng_offset += rng_used_;
  launches_++;
}

// ---- registry ----

bool BuiltWithCuda() { return true; }

int CudaDeviceCount() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {  // no driver or no GPU: 0 devices, and no error left behind
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

namespace {
// Throws, naming the call, unless GPU `id` exists; returns the number of GPUs.
int CheckGpuId(int id, const char* call) {
  const int count = CudaDeviceCount();
  if (id < 0 || id >= count) {
    const std::string what = count == 0 ? std::string("no CUDA GPU is visible")
                                        : "there are " + std::to_string(count) + " CUDA GPU(s)";
    const std::string ids = count == 0 ? std::string("none") : "0.." + std::to_string(count - 1);
    MS_THROW_(RuntimeError, call << "(" << id << "): " << what << " (valid ids: " << ids << ")");
  }
  return count;
}
}  // namespace

Device* CudaDevice(int id) {
  static std::mutex mu;
  static auto* devices = new std::vector<CudaGPU*>();  // never destroyed, like CPU devices
  const int count = CheckGpuId(id, "create_cuda_gpu_on");
  std::lock_guard<std::mutex> lock(mu);
  if (devices->size() < static_cast<size_t>(count)) devices->resize(count, nullptr);
  if ((*devices)[id] == nullptr) (*devices)[id] = new CudaGPU(id);
  return (*devices)[id];
}

GpuInfo CudaDeviceInfo(int id) {
  CheckGpuId(id, "device_query");
  cudaDeviceProp prop{};
  MS_CUDA_CHECK(cudaGetDeviceProperties(&prop, id));
  GpuInfo info;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  int prev = 0;
  MS_CUDA_CHECK(cudaGetDevice(&prev));
  MS_CUDA_CHECK(cudaSetDevice(id));  // cudaMemGetInfo reports the current device
  const cudaError_t err = cudaMemGetInfo(&info.free_bytes, &info.total_bytes);
  MS_CUDA_CHECK(cudaSetDevice(prev));
  MS_CUDA_CHECK(err);
  return info;
}

}  // namespace minisinga
