#include "core/device.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <mutex>
#include <sstream>

#include "core/graph.h"

namespace minisinga {

bool Context::is_cuda() const { return dev->is_cuda(); }

void* Block::mutable_data() {
  if (ptr_ == nullptr) ptr_ = dev_->Malloc(size_);
  return ptr_;
}

const void* Block::data() {
  if (ptr_ == nullptr) {
    ptr_ = dev_->Malloc(size_);
    dev_->Memset0(ptr_, size_);
  }
  return ptr_;
}

void Block::Release() {
  if (ptr_ != nullptr) {
    dev_->Free(ptr_, size_);
    ptr_ = nullptr;
  }
}

namespace {
bool PoisonRequested() {
  const char* v = std::getenv("MINISINGA_POISON_MEMORY");
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}
}  // namespace

Device::Device(DeviceType type, int id)
    : type_(type),
      id_(id),
      graph_(new Graph()),
      rng_block_(std::make_shared<Block>(this, 0)),
      poison_(PoisonRequested()) {
  ctx_.dev = this;
}

void* Device::Malloc(size_t bytes) {
  void* p = pool_->Malloc(bytes);
  if (poison_ && p != nullptr) Memset(p, 0xFF, bytes);
  return p;
}

Device::~Device() = default;

void Device::InitPool() {
  pool_.reset(new CachingPool([this](size_t n) { return RawMalloc(n); },
                              [this](void* p) { RawFree(p); }));
}

std::string Device::name() const {
  return (type_ == DeviceType::kCpu ? "cpu:" : "cuda:") + std::to_string(id_);
}

void Device::Exec(Fn fn, std::vector<BlockPtr> reads, std::vector<BlockPtr> writes,
                  const std::string& name, bool host) {
  if (buffering_) {
    // An absent optional operand contributes no block.
    auto drop_null = [](std::vector<BlockPtr>& v) {
      v.erase(std::remove(v.begin(), v.end(), nullptr), v.end());
    };
    drop_null(reads);
    drop_null(writes);
    graph_->Add(Node{std::move(fn), std::move(reads), std::move(writes), name,
                     graph_->current_phase, host});
  } else {
    fn(&ctx_);
  }
}

void Device::ExecCheck(Fn fn, std::vector<BlockPtr> reads, std::vector<BlockPtr> writes,
                       const std::string& name) {
  if (!buffering_) return fn(&ctx_);
  graph_->AddCheck(Node{std::move(fn), std::move(reads), std::move(writes), name,
                        graph_->current_phase, false});
}

void Device::CheckNotReplaying(const char* what) const {
  MS_CHECK(!replaying_, what << ": called during a replay of " << name()
                             << "'s graph (from one of its Python nodes); a graph cannot "
                                "change or run itself while it runs");
}

void Device::EnableGraph(bool enable) {
  CheckNotReplaying("EnableGraph");
  buffering_ = enable;
}

void Device::RunGraph(bool sequential) {
  MS_CHECK(!buffering_, "RunGraph: the device is still recording; call EnableGraph(False) first");
  CheckNotReplaying("RunGraph");
  struct Replaying {  // cleared however the replay ends
    bool& flag;
    explicit Replaying(bool& f) : flag(f) { flag = true; }
    ~Replaying() { flag = false; }
  } replaying(replaying_);
  graph_->Run(this, sequential);
  faults_due_ = !faults_.empty();  // set after: a Sync inside the replay (profiling) is too early
}

void Device::ResetGraph() {
  CheckNotReplaying("ResetGraph");
  faults_.clear();  // the recorded ops' flags go with them, unread
  faults_due_ = false;
  Sync();
  graph_->Clear();
}

void Device::AddFaultFlag(BlockPtr flag, std::string msg) {
  faults_.emplace_back(std::move(flag), std::move(msg));
}

void Device::CheckFaults() {
  if (!faults_due_) return;
  faults_due_ = false;  // first: the copies below come back here
  for (auto& f : faults_) {
    int32_t v = 0;
    CopyToHost(&v, f.first->data(), sizeof(v));
    if (v != 0) Memset0(f.first->mutable_data(), sizeof(v));  // reported once
    MS_CHECK(v == 0, f.second << " (in the last graph replay on " << name()
                              << "; the ops after it in that step, the parameter updates "
                                 "included, ran with its NaN or zero results)");
  }
}

void Device::SetRandSeed(uint64_t seed) {
  ctx_.seed = seed;
  ctx_.rng_offset = 0;
}

double Device::TimeOp(const Fn& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn(&ctx_);
  Sync();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Device::RecordTime(const std::string& name, double seconds) {
  OpTime& t = profile_[name];
  t.count++;
  t.total += seconds;
}

std::string Device::TimeProfilingReport() const {
  if (profile_.empty()) return "";
  double all = 0;
  for (auto& kv : profile_) all += kv.second.total;
  std::vector<std::pair<std::string, OpTime>> rows(profile_.begin(), profile_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.total > b.second.total; });
  std::ostringstream os;
  os << "Time profiling (" << name() << ", after skipping " << skip_iterations_
     << " iterations):\n";
  os << std::left << std::setw(28) << "op" << std::right << std::setw(10) << "count"
     << std::setw(14) << "mean (ms)" << std::setw(14) << "total (ms)" << std::setw(9)
     << "share" << "\n";
  for (auto& r : rows) {
    os << std::left << std::setw(28) << r.first << std::right << std::setw(10) << r.second.count
       << std::setw(14) << std::fixed << std::setprecision(4)
       << 1e3 * r.second.total / r.second.count << std::setw(14) << 1e3 * r.second.total
       << std::setw(8) << std::setprecision(1) << 100.0 * r.second.total / all << "%\n";
  }
  return os.str();
}

// ---- CPU device ----

CppCPU::CppCPU(int id) : Device(DeviceType::kCpu, id) { InitPool(); }

namespace {
// memcpy, over the OpenMP threads for large copies (one thread's memcpy does not saturate
// the memory bandwidth: 2-3x on big tensors); memmove where the ranges overlap.
void CpuCopy(void* dst, const void* src, size_t n) {
  constexpr size_t kChunk = size_t{1} << 20;
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  if (n < 2 * kChunk || (d < s + n && s < d + n)) {
    std::memmove(d, s, n);
    return;
  }
  const int64_t chunks = static_cast<int64_t>((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    const size_t lo = static_cast<size_t>(c) * kChunk;
    std::memcpy(d + lo, s + lo, std::min(kChunk, n - lo));
  }
}
}  // namespace

void* CppCPU::RawMalloc(size_t bytes) {
  // 64-byte alignment for vector loads.
  return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
}
void CppCPU::RawFree(void* p) { std::free(p); }
void CppCPU::CopyToHost(void* dst, const void* src, size_t n) { CpuCopy(dst, src, n); }
void CppCPU::CopyFromHost(void* dst, const void* src, size_t n) { CpuCopy(dst, src, n); }
void CppCPU::CopyOnDevice(void* dst, const void* src, size_t n) { CpuCopy(dst, src, n); }
void CppCPU::Memset(void* dst, unsigned char byte, size_t n) { std::memset(dst, byte, n); }

// ---- registry: devices are never destroyed (blocks hold raw pointers) ----

namespace {
std::mutex g_mu;
std::vector<Device*>& Devices() {
  static auto* v = new std::vector<Device*>();
  return *v;
}
}  // namespace

Device* DefaultDevice() {
  static Device* d = [] {
    std::lock_guard<std::mutex> lock(g_mu);
    Device* dev = new CppCPU(0);
    Devices().push_back(dev);
    return dev;
  }();
  return d;
}

Device* CreateCpuDevice() {
  DefaultDevice();
  std::lock_guard<std::mutex> lock(g_mu);
  int id = 0;
  for (Device* d : Devices())
    if (!d->is_cuda()) id++;
  Device* dev = new CppCPU(id);
  Devices().push_back(dev);
  return dev;
}

#ifndef MS_WITH_CUDA
bool BuiltWithCuda() { return false; }
int CudaDeviceCount() { return 0; }
Device* CudaDevice(int id) {
  MS_THROW_(RuntimeError, "create_cuda_gpu_on(" << id
                                                << "): minisinga was built without CUDA "
                                                   "(rebuild with MINISINGA_CUDA=1 and nvcc)");
}
GpuInfo CudaDeviceInfo(int id) {
  MS_THROW_(RuntimeError, "device_query(" << id
                                          << "): minisinga was built without CUDA "
                                             "(rebuild with MINISINGA_CUDA=1 and nvcc)");
}
#endif

}  // namespace minisinga
