// CPU random kernels: one Philox block per four consecutive counter values, blocks split
// statically between threads; each element's value depends only on (seed, offset + i).
#include "kernels/random.h"

#include "core/dispatch.h"
#include "kernels/philox.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// Runs f(block_outputs, lane) -> float for every element and stores it as T.
// Counter value offset + i is lane (offset + i) % 4 of block (offset + i) / 4.
template <typename T, typename F>
void ForEachDraw(T* out, int64_t n, uint64_t seed, uint64_t offset, F f) {
  if (n <= 0) return;
  const uint64_t first = offset >> 2;
  const int64_t shift = static_cast<int64_t>(offset & 3);
  const int64_t nblocks = (n + shift + 3) / 4;
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t k = 0; k < nblocks; k++) {
    const philox::U32x4 r = philox::Block(seed, first + static_cast<uint64_t>(k));
    float vals[4];
    f(r, vals);
    const int64_t base = 4 * k - shift;
    for (int l = 0; l < 4; l++) {
      const int64_t i = base + l;
      if (i >= 0 && i < n) out[i] = Cvt<T>::Store(vals[l]);
    }
  }
}

template <typename T>
void UniformT(T* out, int64_t n, uint64_t seed, uint64_t offset, float low, float high) {
  const float span = high - low;
  ForEachDraw(out, n, seed, offset, [=](const philox::U32x4& r, float* v) {
    for (int l = 0; l < 4; l++) v[l] = philox::Affine(philox::ToUnit(r.v[l]), span, low);
  });
}

template <typename T>
void GaussianT(T* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float std) {
  ForEachDraw(out, n, seed, offset, [=](const philox::U32x4& r, float* v) {
    philox::BoxMuller(r.v[0], r.v[1], &v[0], &v[1]);
    philox::BoxMuller(r.v[2], r.v[3], &v[2], &v[3]);
    for (int l = 0; l < 4; l++) v[l] = philox::Affine(v[l], std, mean);
  });
}

template <typename T>
void BernoulliT(T* out, int64_t n, uint64_t seed, uint64_t offset, uint64_t threshold) {
  ForEachDraw(out, n, seed, offset, [=](const philox::U32x4& r, float* v) {
    for (int l = 0; l < 4; l++) v[l] = static_cast<uint64_t>(r.v[l]) < threshold ? 1.0f : 0.0f;
  });
}

}  // namespace

void Uniform(Context*, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
             float low, float high) {
  MS_TYPE_SWITCH(dt, T, UniformT(static_cast<T*>(out), n, seed, offset, low, high));
}

void Gaussian(Context*, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
              float mean, float std) {
  MS_TYPE_SWITCH(dt, T, GaussianT(static_cast<T*>(out), n, seed, offset, mean, std));
}

void Bernoulli(Context*, DType dt, void* out, int64_t n, uint64_t seed, uint64_t offset,
               uint64_t threshold) {
  MS_TYPE_SWITCH(dt, T, BernoulliT(static_cast<T*>(out), n, seed, offset, threshold));
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
