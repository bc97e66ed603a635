// Devices run every kernel through Exec: at once (eager) or into a recorded Graph.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/block.h"
#include "core/common.h"
#include "core/pool.h"

namespace minisinga {

class Device;
class Graph;

enum class DeviceType { kCpu = 0, kCuda = 1 };

// What a kernel closure sees when it runs.
struct Context {
  Device* dev = nullptr;
  uint64_t seed = 0;        // counter-based RNG: (seed, offset) name a stream of numbers
  uint64_t rng_offset = 0;  // advanced by every random kernel
  void* stream = nullptr;   // cudaStream_t on CUDA devices
  void* blas = nullptr;     // cublasHandle_t on CUDA devices
  // CUDA GEMMs may be split along K (kernels/cuda/blas.cu); a convolution plan that the
  // autotuner timed faster without turns it off for its own GEMMs (ops/conv.cc).
  bool gemm_split_k = true;
  bool is_cuda() const;
  // Reserves `n` counter values for one random kernel and returns the first.
  uint64_t TakeRng(uint64_t n) {
    uint64_t o = rng_offset;
    rng_offset += (n + 3) / 4 * 4;
    return o;
  }
};

class Device {
 public:
  using Fn = std::function<void(Context*)>;

  Device(DeviceType type, int id);
  virtual ~Device();

  DeviceType type() const { return type_; }
  bool is_cuda() const { return type_ == DeviceType::kCuda; }
  int id() const { return id_; }
  std::string name() const;

  // The one way a kernel runs: now, or appended to the graph while buffering. `host` marks
  // a closure that does host work at every run (a Python callable), which a device must not
  // capture (CUDA graphs replay device work only).
  void Exec(Fn fn, std::vector<BlockPtr> reads, std::vector<BlockPtr> writes,
            const std::string& name, bool host = false);
  // Exec for a check of the step's inputs (ops' label checks): recorded by Graph::AddCheck,
  // before the step's other nodes where it can be.
  void ExecCheck(Fn fn, std::vector<BlockPtr> reads, std::vector<BlockPtr> writes,
                 const std::string& name);
  // Host <-> device copies of raw bytes, in stream order, blocking until done.
  virtual void CopyToHost(void* dst, const void* src, size_t n) = 0;
  virtual void CopyFromHost(void* dst, const void* src, size_t n) = 0;
  // Device-to-device copy and byte fill, in stream order.
  virtual void CopyOnDevice(void* dst, const void* src, size_t n) = 0;
  virtual void Memset(void* dst, unsigned char byte, size_t n) = 0;
  void Memset0(void* dst, size_t n) { Memset(dst, 0, n); }
  // Waits for all queued work.
  virtual void Sync() {}
  // Whether the device's work is being captured (a CUDA graph), not run: nothing may wait
  // for it or time it then.
  virtual bool capturing() const { return false; }

  // Memory. With MINISINGA_POISON_MEMORY=1 every block handed out is first filled with
  // 0xFF bytes (NaN in float32 and float16, -1 in int32), so a kernel that reads memory
  // nobody wrote gives NaN instead of whatever the last user left there.
  void* Malloc(size_t bytes);
  void Free(void* p, size_t bytes) { pool_->Free(p, bytes); }
  MemoryStats memory_stats() const { return pool_->Stats(); }
  void ResetPeak() { pool_->ResetPeak(); }
  void EmptyCache() { pool_->EmptyCache(); }
  void SetCaching(bool on) { pool_->SetCaching(on); }

  // Graph buffering and replay.
  void EnableGraph(bool enable);
  bool graph_enabled() const { return buffering_; }
  void RunGraph(bool sequential);
  virtual void ResetGraph();
  // Raises if this device is replaying its graph (a Python node may call back into it).
  void CheckNotReplaying(const char* what) const;
  // Inputs checked on the device during a graph replay (labels, indices): an op registers,
  // while recording, the int32 flag its kernel sets non-zero for a bad input and the error
  // that means. On a CPU the op's closure raises at once (RaiseIfFlagged), stopping the
  // replay before the parameter updates; a GPU replays asynchronously, so its flags are read
  // after the next replay at the next Sync or copy to the host (CheckFaults), which raises.
  void AddFaultFlag(BlockPtr flag, std::string msg);
  void CheckFaults();
  // Hook for Graph::Run once the plan is made: a device may replay the graph its own way
  // (CudaGPU: a captured CUDA graph) and return true, or return false for a plain replay.
  virtual bool ReplayGraph(Graph& graph) {
    (void)graph;
    return false;
  }
  Graph* graph() { return graph_.get(); }

  // Random numbers: the same seed gives the same numbers on every run.
  void SetRandSeed(uint64_t seed);
  Context* context() { return &ctx_; }
  // A token that random ops list as written, so a graph keeps them in recorded order
  // (their numbers depend on the order in which they take counter values).
  const BlockPtr& rng_block() const { return rng_block_; }

  // Profiling of graph replays.
  void SetVerbosity(int v) { verbosity_ = v; }
  int verbosity() const { return verbosity_; }
  void SetSkipIteration(int n) { skip_iterations_ = n; }
  int skip_iterations() const { return skip_iterations_; }
  std::string TimeProfilingReport() const;
  void RecordTime(const std::string& name, double seconds);
  void ResetProfiling() { profile_.clear(); }
  // Wall time of `fn` as the device sees it (CUDA: event-timed on the stream).
  virtual double TimeOp(const Fn& fn);

 protected:
  virtual void* RawMalloc(size_t bytes) = 0;
  virtual void RawFree(void* p) = 0;
  void InitPool();

  DeviceType type_;
  int id_;
  Context ctx_;
  std::unique_ptr<CachingPool> pool_;
  std::unique_ptr<Graph> graph_;
  BlockPtr rng_block_;
  bool poison_;
  bool buffering_ = false;
  bool replaying_ = false;  // inside RunGraph
  std::vector<std::pair<BlockPtr, std::string>> faults_;  // AddFaultFlag's, until ResetGraph
  bool faults_due_ = false;  // a replay ran since CheckFaults last read the flags
  int verbosity_ = 0;
  int skip_iterations_ = 0;
  struct OpTime {
    int64_t count = 0;
    double total = 0;
  };
  std::map<std::string, OpTime> profile_;
};

class CppCPU : public Device {
 public:
  explicit CppCPU(int id);
  void CopyToHost(void* dst, const void* src, size_t n) override;
  void CopyFromHost(void* dst, const void* src, size_t n) override;
  void CopyOnDevice(void* dst, const void* src, size_t n) override;
  void Memset(void* dst, unsigned char byte, size_t n) override;

 protected:
  void* RawMalloc(size_t bytes) override;
  void RawFree(void* p) override;
};

// Devices live for the whole process (blocks keep raw pointers to them).
Device* DefaultDevice();
Device* CreateCpuDevice();
Device* CudaDevice(int id);  // throws when built without CUDA or the GPU is absent
int CudaDeviceCount();       // 0 when built without CUDA
bool BuiltWithCuda();

// What device_query and get_gpu_mem_size report of one GPU.
struct GpuInfo {
  std::string name;
  int major = 0, minor = 0, multiprocessors = 0;  // compute capability, SMs
  size_t free_bytes = 0, total_bytes = 0;
};
GpuInfo CudaDeviceInfo(int id);  // throws as CudaDevice does

}  // namespace minisinga
