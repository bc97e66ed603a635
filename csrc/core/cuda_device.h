// CudaGPU: a Device on one NVIDIA GPU. Free of CUDA headers (handles are opaque pointers) so
// that host code such as the bindings can name it; the definitions are in cuda_device.cu and
// exist only in CUDA builds (MS_WITH_CUDA).
//
// Every kernel of a CudaGPU runs on its own non-blocking stream (ctx->stream), in order, so
// memory returned to the caching pool can be handed to the next kernel without a sync.
//
// CUDA-graph replay. Graph::Run calls ReplayGraph once the plan is made:
//   runs 1 and 2 after recording: plain replays with the pool in hold mode, so the memory the
//     graph frees (intermediates released after their last use, conv scratch) lands in a
//     private free list that only the graph's own runs reuse. Run 1 also allocates what
//     outlives a run (outputs, optimizer state), possibly from blocks its intermediates freed
//     earlier in the run; run 2 is the first run in the steady state;
//   run 3: the same replay captured on the stream (cudaStreamBeginCapture ... EndCapture),
//     still in hold mode. Its allocations are served from that private list (they repeat
//     run 2's exactly, and run 2 freed every block it took), so no cudaMalloc happens during
//     capture, and every pointer baked into the CUDA graph stays reserved for it; then
//     cudaGraphLaunch;
//   later runs: one cudaGraphLaunch each.
// The private list is returned to the shared cache when the graph is reset or re-recorded.
// Random kernels captured in the graph read (seed, offset delta) from a device word that is
// set before every launch, so each replay draws fresh numbers exactly as a plain replay would.
// No capture is tried for graphs with host (Python) nodes, while profiling (verbosity > 0),
// or when disabled with SetCudaGraph(false). A capture that fails (a node copies from the
// host, syncs, or would cudaMalloc) is abandoned, the run is done as a plain replay, and the
// graph is not captured again until it is re-recorded; cuda_graph_failure() says why.
#pragma once

#include <cstdint>
#include <string>

#include "core/device.h"

namespace minisinga {

// The device word that captured random kernels read (see above).
struct CudaRngState {
  uint64_t seed;
  uint64_t delta;  // added to the captured counter offsets
};

class CudaGPU : public Device {
 public:
  explicit CudaGPU(int id);
  // Devices live for the whole process (blocks hold raw pointers to them): never destroyed.
  ~CudaGPU() override = default;

  void CopyToHost(void* dst, const void* src, size_t n) override;
  void CopyFromHost(void* dst, const void* src, size_t n) override;
  void CopyOnDevice(void* dst, const void* src, size_t n) override;
  void Memset(void* dst, unsigned char byte, size_t n) override;
  void Sync() override;
  double TimeOp(const Fn& fn) override;
  void ResetGraph() override;
  bool ReplayGraph(Graph& graph) override;

  // Makes this GPU current on the calling thread (kernels launch on its stream).
  void Activate() const;

  int sm_count() const { return sm_count_; }  // multiprocessors

  // TF32 tensor-core math in cuBLAS GEMMs (float32 inputs, 10-bit mantissa products).
  // Off by default: results then match float32 GEMMs to float32 rounding.
  void SetAllowTF32(bool allow);
  bool allow_tf32() const { return allow_tf32_; }

  // CUDA-graph capture of graph replays (on by default).
  void SetCudaGraph(bool enable);
  bool cuda_graph_enabled() const { return cuda_graph_enabled_; }
  int64_t cuda_graph_launches() const { return launches_; }
  bool cuda_graph_captured() const { return exec_ != nullptr; }
  const std::string& cuda_graph_failure() const { return failure_; }

  // While a replay is being captured: the device word captured random kernels read, else
  // nullptr (eager and plain-replay kernels use their arguments as they are).
  const CudaRngState* capture_rng_state() const { return capturing_ ? rng_state_ : nullptr; }
  bool capturing() const override { return capturing_; }

 protected:
  void* RawMalloc(size_t bytes) override;
  void RawFree(void* p) override;

 private:
  void CheckNotCapturing(const char* what) const;
  bool Capture(Graph& graph);
  void Launch();
  void DropCapture();

  bool allow_tf32_ = false;
  int sm_count_ = 1;
  CudaRngState* rng_state_ = nullptr;  // device memory
  void* blas_workspace_ = nullptr;
  // CUDA-graph state for the device's recorded graph, keyed by (version, sequential).
  bool cuda_graph_enabled_ = true;
  bool capturing_ = false;
  uint64_t key_version_ = ~uint64_t{0};
  bool key_sequential_ = false;
  int warm_runs_ = 0;        // hold-mode replays done (capture after kWarmRuns)
  bool failed_ = false;      // capture failed: plain replays until re-recorded
  void* exec_ = nullptr;     // cudaGraphExec_t
  uint64_t rng_base_ = 0;    // host rng offset when captured
  uint64_t rng_used_ = 0;    // counter values one replay takes
  int64_t launches_ = 0;
  std::string failure_;
};

}  // namespace minisinga
