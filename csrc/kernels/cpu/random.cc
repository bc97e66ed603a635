// CPU random kernels: one Philox block per four consecutive counter values, blocks split
// statically between threads; each element's value depends only on (seed, offset + i).
#include "kernels/random.h"

#include "core/dispatch.h"
#include "kernels/philox.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// Every block of the draw, split statically between threads.
template <typename T, typename Map>
void Draw(void* out, int64_t n, uint64_t seed, uint64_t offset, const Map& map) {
  if (n <= 0) return;
  const int64_t nblocks = philox::DrawBlocks(n, offset);
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t k = 0; k < nblocks; k++)
    philox::DrawBlock<Cvt<T>>(static_cast<T*>(out), n, seed, offset, k, map);
}

}  // namespace

void Uniform(Context*, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
             float low, float high) {
  MS_TYPE_SWITCH(dt, T, Draw<T>(out, n, seed, offset, philox::MakeUniformMap(dt, low, high)));
}

void Gaussian(Context*, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
              float mean, float std) {
  MS_TYPE_SWITCH(dt, T, Draw<T>(out, n, seed, offset, philox::GaussianMap{mean, std}));
}

void Bernoulli(Context*, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
               uint64_t threshold) {
  MS_TYPE_SWITCH(dt, T, Draw<T>(out, n, seed, offset, philox::BernoulliMap{threshold}));
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
