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

struct UniformF {
  float span, low;
  __device__ void operator()(const philox::U32x4& r, float* v) const {
    for (int l = 0; l < 4; l++) v[l] = philox::Affine(philox::ToUnit(r.v[l]), span, low);
  }
};

struct GaussianF {
  float mean, std;
  __device__ void operator()(const philox::U32x4& r, float* v) const {
    philox::BoxMuller(r.v[0], r.v[1], &v[0], &v[1]);
    philox::BoxMuller(r.v[2], r.v[3], &v[2], &v[3]);
    for (int l = 0; l < 4; l++) v[l] = philox::Affine(v[l], std, mean);
  }
};

struct BernoulliF {
  uint64_t threshold;
  __device__ void operator()(const philox::U32x4& r, float* v) const {
    for (int l = 0; l < 4; l++) v[l] = static_cast<uint64_t>(r.v[l]) < threshold ? 1.0f : 0.0f;
  }
};

// Counter value offset + i is lane (offset + i) % 4 of block (offset + i) / 4.
template <typename T, typename F>
__global__ void DrawKernel(T* out, int64_t n, uint64_t seed, uint64_t offset,
                           const CudaRngState* state, F f) {
  if (state != nullptr) {  // captured: this launch's seed and counter position
    seed = state->seed;
    offset += state->delta;
  }
  const uint64_t first = offset >> 2;
  const int64_t shift = static_cast<int64_t>(offset & 3);
  const int64_t nblocks = (n + shift + 3) / 4;
  MS_CUDA_LOOP(k, nblocks) {
    const philox::U32x4 r = philox::Block(seed, first + static_cast<uint64_t>(k));
    float vals[4];
    f(r, vals);
    const int64_t base = 4 * k - shift;
    for (int l = 0; l < 4; l++) {
      const int64_t i = base + l;
      if (i >= 0 && i < n) out[i] = DCvt<T>::Store(vals[l]);
    }
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
  Draw(ctx, dt, out, n, seed, offset, UniformF{high - low, low});
}

void Gaussian(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
              float mean, float std) {
  Draw(ctx, dt, out, n, seed, offset, GaussianF{mean, std});
}

void Bernoulli(Context* ctx, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
               uint64_t threshold) {
  Draw(ctx, dt, out, n, seed, offset, BernoulliF{threshold});
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
