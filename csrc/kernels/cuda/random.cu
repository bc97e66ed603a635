// CUDA random kernels: one thread per Philox block of four counter values, the numbering and
// maps of philox.h shared with the CPU, so uniform and bernoulli give the CPU's exact values.
// Inside a captured CUDA graph the seed and a counter delta come from the device's RNG word,
// set before every launch (see cuda_device.h), so each replay draws fresh numbers.
#include <cstdint>

#include "core/dispatch.h"
#include "kernels/cuda/util.cuh"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

using cudak::DCvt;

// A thread per Philox block.
template <typename T, typename Map>
__global__ void DrawKernel(T* out, int64_t n, uint64_t seed, uint64_t offset,
                           const CudaRngState* state, Map map) {
  if (state != nullptr) {  // captured: this launch's seed and counter position
    seed = state->seed;
    offset += state->delta;
  }
  const int64_t nblocks = philox::DrawBlocks(n, offset);
  MS_CUDA_LOOP(k, nblocks) {
    philox::DrawBlock<DCvt<T>>(out, n, seed, offset, k, map);
  }
}

template <typename F>
void Draw(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset, F f) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  const CudaRngState* state = static_cast<CudaGPU*>(ctx->dev)->capture_rng_state();
  // Enough threads for any alignment of the offset (up to 3 extra counter values).
  const unsigned blocks = cudak::Blocks((n + 6) / 4);
  MS_TYPE_SWITCH(dt, T, {
    DrawKernel<T><<<blocks, cudak::kThreads, 0, s>>>(static_cast<T*>(out), n, seed, offset, state,
                                                     f);
  });
  MS_CUDA_LAUNCH_CHECK("DrawKernel");
}

}  // namespace

void Uniform(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
             float low, float high) {
  Draw(ctx, dt, out, n, seed, offset, philox::MakeUniformMap(dt, low, high));
}

void Gaussian(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
              float mean, float std) {
  Draw(ctx, dt, out, n, seed, offset, philox::GaussianMap{mean, std});
}

void Bernoulli(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
               uint64_t threshold) {
  Draw(ctx, dt, out, n, seed, offset, philox::BernoulliMap{threshold});
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
