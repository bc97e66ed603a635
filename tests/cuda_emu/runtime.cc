// The CUDA emulator's runtime: kernels run by block on the host, the runtime and cuBLAS
// calls minisinga makes, with the checks a GPU would make (see include/msemu.h).
#include <sys/mman.h>
#include <ucontext.h>

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "msemu.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

struct MsEmuStream {
  bool capturing = false;
  bool invalidated = false;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::vector<std::function<void()>> nodes;
};
struct MsEmuEvent {
  bool recorded = false;
  std::chrono::steady_clock::time_point t;
};
struct MsEmuGraph {
  std::vector<std::function<void()>> nodes;
};
struct MsEmuGraphExec {
  std::vector<std::function<void()>> nodes;
};
struct MsEmuBlas {
  cudaStream_t stream = nullptr;
};

namespace msemu {

uint3 g_threadIdx, g_blockIdx;
dim3 g_blockDim, g_gridDim;

namespace {

// One kernel, copy or GEMM runs at a time, in call order.
std::recursive_mutex g_mu;
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_device = 0;
thread_local MsEmuStream* t_capture = nullptr;  // this thread's capture (not relaxed)

// The file named by environment variable `var`, opened for writing (null when unset).
std::FILE* OpenNamedBy(const char* var) {
  const char* path = std::getenv(var);
  return path && *path ? std::fopen(path, "w") : nullptr;
}

// $MSEMU_TRACE=FILE: a line per kernel launch, GEMM, copy and memset as it is submitted
// (captured ones once); $MSEMU_DRYRUN=1: kernels and GEMMs are checked and traced, not run
// (tests/cuda_emu/trace_table.py turns a trace into a table of the launches).
std::FILE* Trace() {
  static std::FILE* f = OpenNamedBy("MSEMU_TRACE");
  return f;
}
bool DryRun() {
  static const bool dry = [] {
    const char* v = std::getenv("MSEMU_DRYRUN");
    return v && *v && *v != '0';
  }();
  return dry;
}

cudaError_t Fail(cudaError_t e, const std::string& why) {
  if (std::getenv("MSEMU_VERBOSE")) std::fprintf(stderr, "msemu: %s\n", why.c_str());
  t_last_error = e;
  return e;
}

// ---- device memory: live allocations, for the checks of copies and GEMM operands ----

std::map<const char*, size_t> g_allocs;  // start -> bytes
size_t g_live = 0;

size_t MemoryLimit() {
  const char* v = std::getenv("MSEMU_MEMORY_BYTES");
  return v ? std::strtoull(v, nullptr, 10) : (size_t{4} << 30);
}

enum class Where { kHost, kDevice, kStraddles };

// Whether [p, p + n) is device memory (inside one allocation), host memory (touches none),
// or runs past the end of an allocation.
Where Locate(const void* ptr, size_t n) {
  const char* p = static_cast<const char*>(ptr);
  auto it = g_allocs.upper_bound(p);
  if (it != g_allocs.begin()) {
    auto prev = std::prev(it);
    if (p < prev->first + prev->second)
      return p + n <= prev->first + prev->second ? Where::kDevice : Where::kStraddles;
  }
  if (it != g_allocs.end() && n > 0 && p + n > it->first) return Where::kStraddles;
  return Where::kHost;
}

bool IsDevice(const void* p, size_t n) { return Locate(p, n) == Where::kDevice; }

// A non-relaxed capture on this thread forbids `what`; the capture is invalidated.
bool CaptureForbids(const char* what) {
  if (t_capture == nullptr || t_capture->mode == cudaStreamCaptureModeRelaxed) return false;
  t_capture->invalidated = true;
  Fail(cudaErrorStreamCaptureUnsupported, std::string(what) + " during stream capture");
  return true;
}

// Runs `work` now, or appends it to the stream's capture.
void Enqueue(cudaStream_t s, std::function<void()> work) {
  if (s != nullptr && s->capturing) {
    s->nodes.push_back(std::move(work));
    return;
  }
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  work();
}

// ---- kernels: blocks one after another, each thread of a block a fiber ----
//
// A fiber runs until its thread reaches a barrier (__syncthreads, a warp shuffle) or ends;
// the scheduler resumes the block's fibers in turn until all have ended. Every thread is a
// fiber, whether or not its kernel synchronises: barriers may depend on the arguments.
// $MSEMU_SCHEDULE=reverse runs the blocks, and the threads between two barriers, last to
// first: a kernel whose result depends on that order (a thread reading shared memory that
// another writes with no barrier between, a block reading what another block writes) gives
// different results in the two schedules.

bool Reversed() {
  static const bool reverse = [] {
    const char* v = std::getenv("MSEMU_SCHEDULE");
    const std::string s = v ? v : "";
    if (s.empty() || s == "forward") return false;
    if (s == "reverse") return true;
    std::fprintf(stderr, "msemu: MSEMU_SCHEDULE is '%s'; expected forward or reverse\n", v);
    std::abort();
  }();
  return reverse;
}

constexpr size_t kStack = 64 << 10;  // per fiber, above a guard page

#if defined(__x86_64__)
// Fiber switch: saves the callee-saved registers on the running stack, stores the stack
// pointer in *from and continues on `to` (a stack saved the same way, or made by NewStack).
// The floating-point control words (MXCSR, x87) are not switched: no kernel changes them.
extern "C" void msemu_switch(void** from, void* to);
asm(R"(
  .text
  .globl msemu_switch
  .hidden msemu_switch
  .type msemu_switch, @function
msemu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size msemu_switch, .-msemu_switch
)");

struct Context {
  void* sp = nullptr;
};
void Switch(Context& from, Context& to) { msemu_switch(&from.sp, to.sp); }
// A stack whose first switch "returns" into entry, aligned as after a call.
void NewStack(Context& c, char* stack, size_t size, void (*entry)()) {
  const uintptr_t top = reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t{15};
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;  // entry's return address: it never returns
  *--sp = reinterpret_cast<void*>(entry);
  for (int i = 0; i < 6; i++) *--sp = nullptr;  // rbp rbx r12-r15
  c.sp = sp;
}
#else
struct Context {
  ucontext_t uc;
};
void Switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
void NewStack(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}
#endif

struct Fiber {
  Context ctx;
  uint3 tid;
  int lin;
  bool done;
};
struct Barrier {
  int live = 0, arrived = 0;
  unsigned gen = 0;
};

Context g_sched;
std::vector<Fiber> g_fibers;
char* g_stacks = nullptr;
size_t g_stack_count = 0;
Fiber* g_cur = nullptr;
int g_lin = 0;  // the running thread's linear index within its block
const std::function<void()>* g_body = nullptr;
Barrier g_block_bar;
std::vector<Barrier> g_warp_bar;
std::vector<uint64_t> g_slots;  // a shuffle's values, 16 bytes per thread
uint64_t g_progress = 0;
std::exception_ptr g_fault;
const char* g_site = "";

void Yield() { Switch(g_cur->ctx, g_sched); }

void Release(Barrier& b) {
  if (b.arrived > 0 && b.arrived == b.live) {
    b.arrived = 0;
    b.gen++;
    g_progress++;
  }
}

void Wait(Barrier& b) {
  const unsigned gen = b.gen;
  b.arrived++;
  g_progress++;
  Release(b);
  while (b.gen == gen) Yield();
}

[[noreturn]] void FiberMain() {
  try {
    (*g_body)();
  } catch (...) {
    if (!g_fault) g_fault = std::current_exception();
  }
  Fiber* f = g_cur;
  f->done = true;
  g_block_bar.live--;
  g_warp_bar[f->lin / 32].live--;
  g_progress++;
  Release(g_block_bar);
  Release(g_warp_bar[f->lin / 32]);
  Switch(f->ctx, g_sched);  // never resumed
  std::abort();
}

void EnsureStacks(size_t n) {
  if (g_stack_count >= n) return;
  if (g_stacks) munmap(g_stacks, g_stack_count * (kStack + 4096));
  const size_t each = kStack + 4096;
  void* m = mmap(nullptr, n * each, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) throw std::runtime_error("msemu: no memory for fiber stacks");
  g_stacks = static_cast<char*>(m);
  g_stack_count = n;
  for (size_t i = 0; i < n; i++) mprotect(g_stacks + i * each, 4096, PROT_NONE);  // guard
}

// Fibers abandoned mid-kernel (a deadlock, a fault) leave their frames' AddressSanitizer
// poison on the stacks; the next blocks reuse them.
void ForgetStacks() {
#if defined(__SANITIZE_ADDRESS__)
  ASAN_UNPOISON_MEMORY_REGION(g_stacks, g_stack_count * (kStack + 4096));
#endif
}

void RunBlock(int n) {
  EnsureStacks(n);
  g_fibers.resize(n);
  g_warp_bar.assign((n + 31) / 32, Barrier{});
  g_slots.assign(2 * static_cast<size_t>(n), 0);
  g_block_bar = Barrier{};
  g_block_bar.live = n;
  for (int i = 0; i < n; i++) {
    Fiber& f = g_fibers[i];
    f.lin = i;
    f.done = false;
    f.tid = uint3{i % g_blockDim.x, i / g_blockDim.x % g_blockDim.y,
                  i / (g_blockDim.x * g_blockDim.y)};
    g_warp_bar[i / 32].live++;
    NewStack(f.ctx, g_stacks + i * (kStack + 4096) + 4096, kStack, FiberMain);
  }
  int remaining = n;
  const bool reverse = Reversed();
  while (remaining > 0) {
    const uint64_t before = g_progress;
    for (int i = 0; i < n; i++) {
      Fiber& f = g_fibers[reverse ? n - 1 - i : i];
      if (f.done) continue;
      g_cur = &f;
      g_lin = f.lin;
      g_threadIdx = f.tid;
      Switch(g_sched, f.ctx);
      if (f.done) remaining--;
    }
    g_cur = nullptr;
    if (g_fault) {
      ForgetStacks();
      std::rethrow_exception(std::exchange(g_fault, nullptr));
    }
    if (remaining > 0 && g_progress == before) {
      ForgetStacks();
      throw std::runtime_error(std::string("msemu: deadlock: threads wait at barriers that ") +
                               "the rest of the block never reaches (" + g_site + ")");
    }
  }
}

// ---- memory statistics: $MSEMU_MEMSTATS=FILE in a build with MSEMU_MEMTRACE=1 ----
// That build compiles the kernels' sources with GCC's ThreadSanitizer instrumentation and no
// ThreadSanitizer runtime: every load and store calls memtrace.cc, which calls
// RecordAccess. For a sample of each launch's blocks (at most kSampledBlocks, evenly spread)
// the accesses to device memory are grouped as a GPU would issue them: the k-th access of a
// thread at one instruction, across the 32 threads of its warp, is one request, and the
// request costs the distinct 32-byte sectors it touches. A line per launch goes to the file
// (tests/cuda_emu/mem_table.py turns it into a table):
//   site  blocks  sampled-blocks  requests  sectors  bytes  unique-sectors
// (requests, sectors, bytes and unique sectors of the sampled blocks; unique: distinct
// sectors over all of them, the traffic a launch needs if every sector is fetched once).

constexpr uint64_t kSampledBlocks = 32;

struct MemAccessRec {
  uint64_t group;   // instruction id << 40 | warp << 32 | occurrence
  uint64_t sector;
  uint32_t bytes;
};

bool g_mem_sampling = false;  // the running block is sampled
std::vector<MemAccessRec> g_mem_block;
std::unordered_map<uint64_t, uint32_t> g_mem_occurrence;  // (pc, thread) -> accesses so far
std::unordered_map<const void*, uint64_t> g_mem_pc_id;     // instruction -> small id
struct MemLaunch {
  uint64_t requests = 0, sectors = 0, bytes = 0;
  std::vector<uint64_t> all_sectors;
} g_mem_launch;

std::FILE* MemStats() {
  static std::FILE* f = OpenNamedBy("MSEMU_MEMSTATS");
  return f;
}

// Folds the sampled block's accesses into the launch's counts.
void MemBlockEnd() {
  std::vector<MemAccessRec>& v = g_mem_block;
  std::sort(v.begin(), v.end(), [](const MemAccessRec& a, const MemAccessRec& b) {
    return a.group != b.group ? a.group < b.group : a.sector < b.sector;
  });
  for (size_t i = 0; i < v.size(); i++) {
    const bool new_group = i == 0 || v[i].group != v[i - 1].group;
    g_mem_launch.requests += new_group;
    g_mem_launch.sectors += new_group || v[i].sector != v[i - 1].sector;
    g_mem_launch.bytes += v[i].bytes;
    g_mem_launch.all_sectors.push_back(v[i].sector);
  }
  v.clear();
  g_mem_occurrence.clear();
  g_mem_sampling = false;
}

void MemLaunchEnd(const char* site, uint64_t blocks, uint64_t sampled) {
  std::vector<uint64_t>& all = g_mem_launch.all_sectors;
  std::sort(all.begin(), all.end());
  const size_t unique = std::unique(all.begin(), all.end()) - all.begin();
  std::fprintf(MemStats(), "%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%zu\n", site,
               static_cast<unsigned long long>(blocks), static_cast<unsigned long long>(sampled),
               static_cast<unsigned long long>(g_mem_launch.requests),
               static_cast<unsigned long long>(g_mem_launch.sectors),
               static_cast<unsigned long long>(g_mem_launch.bytes), unique);
  g_mem_launch = MemLaunch{};
}

void Execute(const Config& c, const std::function<void()>& body, const char* site) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  g_gridDim = c.grid;
  g_blockDim = c.block;
  g_body = &body;
  g_site = site;
  const int n = static_cast<int>(c.block.x * c.block.y * c.block.z);
  const uint64_t blocks = uint64_t{c.grid.x} * c.grid.y * c.grid.z;
  const bool stats = MemStats() != nullptr;
  if (stats) {  // what a launch that faulted left
    g_mem_block.clear();
    g_mem_occurrence.clear();
    g_mem_launch = MemLaunch{};
  }
  const uint64_t every = std::max<uint64_t>(1, blocks / kSampledBlocks);
  uint64_t sampled = 0;
  for (uint64_t b = 0; b < blocks; b++) {
    const uint64_t i = Reversed() ? blocks - 1 - b : b;
    g_blockIdx = uint3{static_cast<unsigned>(i % c.grid.x),
                       static_cast<unsigned>(i / c.grid.x % c.grid.y),
                       static_cast<unsigned>(i / (uint64_t{c.grid.x} * c.grid.y))};
    g_mem_sampling = stats && i % every == 0 && i / every < kSampledBlocks;
    sampled += g_mem_sampling;
    RunBlock(n);
    if (g_mem_sampling) MemBlockEnd();
  }
  if (stats) MemLaunchEnd(site, blocks, sampled);
}

}  // namespace

// ---- kernel-side entry points ----

void SyncThreads() { Wait(g_block_bar); }

int LaneId() { return g_lin & 31; }

void WarpShuffle(const void* in, void* out, size_t bytes, int src) {
  if (bytes > 16) throw std::runtime_error("msemu: shuffle of more than 16 bytes");
  const int warp = g_lin / 32;
  std::memcpy(&g_slots[2 * g_lin], in, bytes);
  Wait(g_warp_bar[warp]);
  const int from = warp * 32 + src;
  const bool ok = src >= 0 && src < 32 && from < static_cast<int>(g_fibers.size()) &&
                  !g_fibers[from].done;
  std::memcpy(out, ok ? &g_slots[2 * from] : &g_slots[2 * g_lin], bytes);
  Wait(g_warp_bar[warp]);
}

bool Tracing() { return Trace() != nullptr; }

void RecordAccess(const void* p, size_t bytes, const void* pc) {
  if (!g_mem_sampling || g_cur == nullptr || bytes == 0 || !IsDevice(p, bytes)) return;
  const uint64_t id = g_mem_pc_id.emplace(pc, g_mem_pc_id.size()).first->second;
  const uint64_t k = g_mem_occurrence[id << 10 | static_cast<uint64_t>(g_lin)]++;
  const uint64_t group = id << 40 | uint64_t(g_lin / 32) << 32 | (k & 0xffffffffu);
  const uint64_t a = reinterpret_cast<uint64_t>(p);
  for (uint64_t s = a >> 5; s <= (a + bytes - 1) >> 5; s++)
    g_mem_block.push_back({group, s, static_cast<uint32_t>(s == a >> 5 ? bytes : 0)});
}

void Submit(const Config& c, std::function<void()> body, const char* site,
            const std::string& args) {
  const uint64_t threads = uint64_t{c.block.x} * c.block.y * c.block.z;
  if (c.grid.x == 0 || c.grid.y == 0 || c.grid.z == 0 || c.grid.x > 0x7fffffffu ||
      c.grid.y > 65535 || c.grid.z > 65535 || threads == 0 || threads > 1024 ||
      c.block.z > 64 || c.smem > (48 << 10)) {
    Fail(cudaErrorInvalidConfiguration,
         "launch grid (" + std::to_string(c.grid.x) + "," + std::to_string(c.grid.y) + "," +
             std::to_string(c.grid.z) + ") block (" + std::to_string(c.block.x) + "," +
             std::to_string(c.block.y) + "," + std::to_string(c.block.z) + ") of " + site);
    return;
  }
  if (std::FILE* f = Trace())
    std::fprintf(f, "K\t%s\t%u %u %u\t%u %u %u\t%zu\t%s\n", site, c.grid.x, c.grid.y,
                 c.grid.z, c.block.x, c.block.y, c.block.z, c.smem, args.c_str());
  if (DryRun()) return;
  Enqueue(c.stream, [c, body = std::move(body), site] { Execute(c, body, site); });
}

void EnqueueWork(cudaStream_t s, std::function<void()> work) { Enqueue(s, std::move(work)); }

bool IsDeviceRange(const void* p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(g_mu);
  return IsDevice(p, bytes);
}

cudaError_t FailCall(cudaError_t e, const char* what) { return Fail(e, what); }

// ---- float16 ----

float HalfToFloat(unsigned short h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {
    const float v = std::ldexp(static_cast<float>(m), -24);
    return sign ? -v : v;
  }
  const uint32_t bits =
      e == 31 ? sign | 0x7f800000u | (m << 13) : sign | ((e + 112) << 23) | (m << 13);
  return msemu_bits<float>(bits);
}

unsigned short FloatToHalf(float f) {
  const uint32_t x = msemu_bits<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<unsigned short>(0x7fff);  // NaN, as the GPU gives
  if (ax >= 0x477ff000u) return static_cast<unsigned short>(sign | 0x7c00);  // >= 65520: inf
  if (ax < 0x38800000u) {  // below 2^-14: a subnormal half, m * 2^-24
    const float a = msemu_bits<float>(ax);
    const uint32_t m = static_cast<uint32_t>(std::nearbyint(a * 16777216.0f));  // exact scaling
    return static_cast<unsigned short>(sign | m);
  }
  const uint32_t e = ax - 0x38000000u;  // rebias 127 -> 15
  uint32_t h = e >> 13;
  const uint32_t rem = e & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return static_cast<unsigned short>(sign | h);
}

}  // namespace msemu

using msemu::Fail;

// ---- runtime API ----

cudaError_t cudaGetLastError() { return std::exchange(msemu::t_last_error, cudaSuccess); }
cudaError_t cudaPeekAtLastError() { return msemu::t_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
  }
  return "unknown error";
}

cudaError_t cudaGetDeviceCount(int* n) {
  const char* v = std::getenv("MSEMU_DEVICES");
  *n = v ? std::atoi(v) : 1;
  return *n > 0 ? cudaSuccess : Fail(cudaErrorNoDevice, "no emulated device");
}

cudaError_t cudaSetDevice(int id) {
  int n = 0;
  cudaGetDeviceCount(&n);
  if (id < 0 || id >= n) return Fail(cudaErrorInvalidDevice, "cudaSetDevice");
  msemu::t_device = id;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  int n = 0;
  cudaGetDeviceCount(&n);
  if (device < 0 || device >= n) return Fail(cudaErrorInvalidDevice, "cudaDeviceGetAttribute");
  if (attr != cudaDevAttrMultiProcessorCount)
    return Fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated");
  const char* v = std::getenv("MSEMU_SMS");
  *value = v && *v ? std::atoi(v) : 132;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  int n = 0;
  cudaGetDeviceCount(&n);
  if (device < 0 || device >= n) return Fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties");
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "minisinga CUDA emulator");
  prop->totalGlobalMem = msemu::MemoryLimit();
  prop->major = 9;
  prop->minor = 0;
  return cudaDeviceGetAttribute(&prop->multiProcessorCount, cudaDevAttrMultiProcessorCount,
                                device);
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  std::lock_guard<std::recursive_mutex> lock(msemu::g_mu);
  *total = msemu::MemoryLimit();
  *free = *total > msemu::g_live ? *total - msemu::g_live : 0;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* id) {
  *id = msemu::t_device;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (msemu::CaptureForbids("cudaMalloc")) return cudaErrorStreamCaptureUnsupported;
  std::lock_guard<std::recursive_mutex> lock(msemu::g_mu);
  if (bytes == 0) return cudaSuccess;
  const size_t rounded = (bytes + 255) / 256 * 256;
  if (msemu::g_live + rounded > msemu::MemoryLimit())
    return Fail(cudaErrorMemoryAllocation, "cudaMalloc beyond MSEMU_MEMORY_BYTES");
  void* m = std::aligned_alloc(256, rounded);
  if (m == nullptr) return Fail(cudaErrorMemoryAllocation, "cudaMalloc");
  msemu::g_allocs[static_cast<const char*>(m)] = bytes;
  msemu::g_live += rounded;
  *p = m;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (p == nullptr) return cudaSuccess;
  if (msemu::CaptureForbids("cudaFree")) return cudaErrorStreamCaptureUnsupported;
  std::lock_guard<std::recursive_mutex> lock(msemu::g_mu);
  auto it = msemu::g_allocs.find(static_cast<const char*>(p));
  if (it == msemu::g_allocs.end())
    return Fail(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  msemu::g_live -= (it->second + 255) / 256 * 256;
  msemu::g_allocs.erase(it);
  std::free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(msemu::g_mu);
  using msemu::Where;
  const Where d = msemu::Locate(dst, n), r = msemu::Locate(src, n);
  const bool ok = (kind == cudaMemcpyHostToDevice && d == Where::kDevice && r == Where::kHost) ||
                  (kind == cudaMemcpyDeviceToHost && d == Where::kHost && r == Where::kDevice) ||
                  (kind == cudaMemcpyDeviceToDevice && d == Where::kDevice && r == Where::kDevice);
  if (!ok)
    return Fail(cudaErrorInvalidValue, "cudaMemcpyAsync: the pointers do not match the kind " +
                                           std::to_string(kind) + " or run past an allocation");
  if (std::FILE* f = msemu::Trace()) std::fprintf(f, "C\t%d\t%zu\n", static_cast<int>(kind), n);
  const char* a = static_cast<const char*>(dst);
  const char* b = static_cast<const char*>(src);
  if (a < b + n && b < a + n) return Fail(cudaErrorInvalidValue, "cudaMemcpyAsync: overlap");
  if (s != nullptr && s->capturing) {
    if (kind != cudaMemcpyDeviceToDevice) {
      s->invalidated = true;
      return Fail(cudaErrorStreamCaptureUnsupported, "host copy during stream capture");
    }
    s->nodes.push_back([dst, src, n] { std::memcpy(dst, src, n); });
    return cudaSuccess;
  }
  std::memcpy(dst, src, n);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(msemu::g_mu);
  if (!msemu::IsDevice(dst, n))
    return Fail(cudaErrorInvalidValue, "cudaMemsetAsync outside the device's allocations");
  if (std::FILE* f = msemu::Trace()) std::fprintf(f, "M\t%zu\n", n);
  msemu::Enqueue(s, [dst, value, n] { std::memset(dst, value, n); });
  return cudaSuccess;
}

cudaError_t cudaMemset(void* dst, int value, size_t n) {
  return cudaMemsetAsync(dst, value, n, nullptr);
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new MsEmuStream();
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s != nullptr && s->capturing) {
    s->invalidated = true;
    return Fail(cudaErrorStreamCaptureUnsupported, "cudaStreamSynchronize while capturing");
  }
  if (msemu::CaptureForbids("cudaStreamSynchronize")) return cudaErrorStreamCaptureUnsupported;
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (s == nullptr) return Fail(cudaErrorStreamCaptureUnsupported, "capture of stream 0");
  if (s->capturing) return Fail(cudaErrorIllegalState, "the stream is capturing already");
  s->capturing = true;
  s->invalidated = false;
  s->mode = mode;
  s->nodes.clear();
  if (mode != cudaStreamCaptureModeRelaxed) msemu::t_capture = s;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
  *g = nullptr;
  if (s == nullptr || !s->capturing) return Fail(cudaErrorIllegalState, "not capturing");
  s->capturing = false;
  if (msemu::t_capture == s) msemu::t_capture = nullptr;
  auto nodes = std::move(s->nodes);
  s->nodes.clear();
  if (s->invalidated)
    return Fail(cudaErrorStreamCaptureInvalidated, "the capture was invalidated");
  *g = new MsEmuGraph{std::move(nodes)};
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  if (g == nullptr) return Fail(cudaErrorInvalidValue, "cudaGraphInstantiate of no graph");
  *e = new MsEmuGraphExec{g->nodes};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
  if (e == nullptr) return Fail(cudaErrorInvalidResourceHandle, "cudaGraphLaunch");
  msemu::Enqueue(s, [e] {
    for (auto& node : e->nodes) node();
  });
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new MsEmuEvent();
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (e == nullptr) return Fail(cudaErrorInvalidResourceHandle, "cudaEventRecord");
  msemu::Enqueue(s, [e] {
    e->t = std::chrono::steady_clock::now();
    e->recorded = true;
  });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  if (e == nullptr) return Fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize");
  if (msemu::CaptureForbids("cudaEventSynchronize")) return cudaErrorStreamCaptureUnsupported;
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  if (a == nullptr || b == nullptr || !a->recorded || !b->recorded)
    return Fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime of unrecorded events");
  *ms = std::chrono::duration<float, std::milli>(b->t - a->t).count();
  return cudaSuccess;
}

// ---- cuBLAS ----

cublasStatus_t cublasCreate(cublasHandle_t* h) {
  *h = new MsEmuBlas();
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->stream = s;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* ws, size_t bytes) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  std::lock_guard<std::recursive_mutex> lock(msemu::g_mu);
  if (bytes > 0 && !msemu::IsDevice(ws, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t) {
  return h == nullptr ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_SUCCESS;
}

namespace {

// A column-major rows x cols operand of `size`-byte elements with leading dimension ld,
// `batch` of them `stride` apart: the bytes it spans must be device memory.
bool Spans(const void* p, size_t size, int rows, int cols, int ld, long long stride, int batch) {
  if (rows == 0 || cols == 0 || batch == 0) return true;
  const size_t last = static_cast<size_t>(batch - 1) * static_cast<size_t>(stride) +
                      static_cast<size_t>(cols - 1) * ld + rows;
  return msemu::IsDevice(p, last * size);
}

size_t SizeOf(cudaDataType_t t) { return t == CUDA_R_16F ? 2 : 4; }

// Matrix b of an operand as a compact column-major float32 copy (ld = rows).
std::vector<float> Widen(const void* p, cudaDataType_t t, int rows, int cols, int ld,
                         long long stride, int b) {
  std::vector<float> w(static_cast<size_t>(rows) * cols);
  for (int j = 0; j < cols; j++)
    for (int i = 0; i < rows; i++) {
      const size_t e = static_cast<size_t>(b) * stride + static_cast<size_t>(j) * ld + i;
      w[static_cast<size_t>(j) * rows + i] =
          t == CUDA_R_16F ? msemu::HalfToFloat(static_cast<const unsigned short*>(p)[e])
                          : static_cast<const float*>(p)[e];
    }
  return w;
}

cublasStatus_t Gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, float al, const void* A, cudaDataType_t at, int lda, long long sa,
                    const void* B, cudaDataType_t bt, int ldb, long long sb, float be, void* C,
                    cudaDataType_t ct, int ldc, long long sc, int batch) {
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int ar = ta == CUBLAS_OP_N ? m : k, ac = ta == CUBLAS_OP_N ? k : m;
  const int br = tb == CUBLAS_OP_N ? k : n, bc = tb == CUBLAS_OP_N ? n : k;
  if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < std::max(1, ar) || ldb < std::max(1, br) ||
      ldc < std::max(1, m) || sa < 0 || sb < 0 || sc < 0) {
    Fail(cudaErrorInvalidValue, "cublas GEMM: invalid sizes or leading dimensions");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  {
    std::lock_guard<std::recursive_mutex> lock(msemu::g_mu);
    if (!Spans(A, SizeOf(at), ar, ac, lda, sa, batch) ||
        !Spans(B, SizeOf(bt), br, bc, ldb, sb, batch) ||
        !Spans(C, SizeOf(ct), m, n, ldc, sc, batch)) {
      Fail(cudaErrorInvalidValue, "cublas GEMM: an operand runs past its allocation");
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  if (std::FILE* f = msemu::Trace())
    std::fprintf(f, "G\t%c%c %s%s%s\t%d %d %d %d\n", ta == CUBLAS_OP_N ? 'n' : 't',
                 tb == CUBLAS_OP_N ? 'n' : 't', at == CUDA_R_16F ? "h" : "f",
                 bt == CUDA_R_16F ? "h" : "f", ct == CUDA_R_16F ? "h" : "f", m, n, k, batch);
  if (m == 0 || n == 0 || batch == 0 || msemu::DryRun()) return CUBLAS_STATUS_SUCCESS;
  msemu::Enqueue(h->stream, [=] {
    for (int b = 0; b < batch; b++) {
      // float32 products and sums (cuBLAS's CUBLAS_COMPUTE_32F), C rounded once
      const std::vector<float> a = Widen(A, at, ar, ac, lda, sa, b);
      const std::vector<float> bm = Widen(B, bt, br, bc, ldb, sb, b);
      std::vector<float> c = be != 0.f ? Widen(C, ct, m, n, ldc, sc, b)
                                       : std::vector<float>(static_cast<size_t>(m) * n);
      if (k == 0) {  // C = beta C, C not read when beta == 0
        for (float& v : c) v = be == 0.f ? 0.f : v * be;
      } else {
        scipy_cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                          tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, al, a.data(),
                          std::max(1, ar), bm.data(), std::max(1, br), be, c.data(), m);
      }
      for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
          const size_t e = static_cast<size_t>(b) * sc + static_cast<size_t>(j) * ldc + i;
          const float v = c[static_cast<size_t>(j) * m + i];
          if (ct == CUDA_R_16F)
            static_cast<unsigned short*>(C)[e] = msemu::FloatToHalf(v);
          else
            static_cast<float*>(C)[e] = v;
        }
    }
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float* alpha, const float* A, int lda,
                           const float* B, int ldb, const float* beta, float* C, int ldc) {
  return Gemm(h, ta, tb, m, n, k, *alpha, A, CUDA_R_32F, lda, 0, B, CUDA_R_32F, ldb, 0, *beta, C,
              CUDA_R_32F, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t ta,
                                         cublasOperation_t tb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long sa, const float* B, int ldb, long long sb,
                                         const float* beta, float* C, int ldc, long long sc,
                                         int batch) {
  return Gemm(h, ta, tb, m, n, k, *alpha, A, CUDA_R_32F, lda, sa, B, CUDA_R_32F, ldb, sb, *beta,
              C, CUDA_R_32F, ldc, sc, batch);
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta,
                                          cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType_t at,
                                          int lda, long long sa, const void* B,
                                          cudaDataType_t bt, int ldb, long long sb,
                                          const void* beta, void* C, cudaDataType_t ct, int ldc,
                                          long long sc, int batch, cublasComputeType_t compute,
                                          cublasGemmAlgo_t) {
  if (compute != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return Gemm(h, ta, tb, m, n, k, *static_cast<const float*>(alpha), A, at, lda, sa, B, bt, ldb,
              sb, *static_cast<const float*>(beta), C, ct, ldc, sc, batch);
}
