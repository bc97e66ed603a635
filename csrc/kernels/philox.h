// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator of Random123, plus the maps from its 32-bit outputs to the numbers
// the random kernels store. Everything is MS_HD: CPU and CUDA share one definition.
//
// The 32-bit outputs and uniform() are bit-identical on CPU and CUDA; gaussian() goes
// through logf/cosf/sinf, whose last bits may differ between libm and CUDA.
//
// Numbering: a device's RNG state is (seed, offset). Counter value j (j = offset + i for
// element i of a call) is lane j % 4 of the Philox block with 128-bit counter
// {lo32(j / 4), hi32(j / 4), 0, 0} and key {lo32(seed), hi32(seed)}. So element i never
// depends on how the work is split between threads.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace minisinga {
namespace philox {

struct U32x4 {
  uint32_t v[4];
};

constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;  // key schedule (Weyl) increments

MS_HD uint32_t MulHiLo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

MS_HD U32x4 Round(U32x4 c, uint32_t k0, uint32_t k1) {
  uint32_t hi0, hi1;
  uint32_t lo0 = MulHiLo(kM0, c.v[0], &hi0);
  uint32_t lo1 = MulHiLo(kM1, c.v[2], &hi1);
  return U32x4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
}

// The full 10-round bijection of Random123's philox4x32_R(10, ctr, key).
MS_HD U32x4 Philox4x32_10(U32x4 ctr, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 9; r++) {
    ctr = Round(ctr, k0, k1);
    k0 += kW0;
    k1 += kW1;
  }
  return Round(ctr, k0, k1);
}

// The four 32-bit outputs of block `block` (= counter value / 4) of stream `seed`.
MS_HD U32x4 Block(uint64_t seed, uint64_t block) {
  U32x4 ctr{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}};
  return Philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Uniform in [0, 1): the top 24 bits, exactly representable in float32.
MS_HD float ToUnit(uint32_t r) { return static_cast<float>(r >> 8) * (1.0f / 16777216.0f); }
// Uniform in (0, 1]: safe for log().
MS_HD float ToUnitOpen0(uint32_t r) {
  return static_cast<float>((r >> 8) + 1u) * (1.0f / 16777216.0f);
}

// low + span * u with one rounding (an explicit fma, so no compiler contracts it otherwise).
MS_HD float Affine(float u, float span, float low) { return fmaf(span, u, low); }

// Box-Muller: two standard normals from two 32-bit outputs (z0 from cos, z1 from sin).
MS_HD void BoxMuller(uint32_t a, uint32_t b, float* z0, float* z1) {
  const float r = sqrtf(-2.0f * logf(ToUnitOpen0(a)));
  const float theta = 6.2831853071795864769f * ToUnit(b);
  *z0 = r * cosf(theta);
  *z1 = r * sinf(theta);
}

// The maps from a block's four outputs to the four values a random kernel stores.
struct UniformMap {  // low + (high - low) * u, at most `below`
  float span, low, below;
  MS_HD void operator()(const U32x4& r, float* v) const {
    for (int l = 0; l < 4; l++) v[l] = fminf(Affine(ToUnit(r.v[l]), span, low), below);
  }
};

// The largest value of storage type dt below `high` (at least `low`): a draw rounded to
// float16, or low + span * u rounded to float32 at a large offset, could otherwise be high,
// and uniform() promises [low, high).
inline UniformMap MakeUniformMap(DType dt, float low, float high) {
  float below = std::nextafter(high, -INFINITY);
  if (dt == DType::kFloat16) {
    uint16_t h = FloatToHalf(high);
    if (HalfToFloat(h) >= high)
      h = static_cast<uint16_t>((h & 0x8000) ? h + 1 : (h == 0 ? 0x8001 : h - 1));
    below = HalfToFloat(h);
  }
  return UniformMap{high - low, low, below < low ? low : below};
}
struct GaussianMap {  // mean + std * z
  float mean, std;
  MS_HD void operator()(const U32x4& r, float* v) const {
    BoxMuller(r.v[0], r.v[1], &v[0], &v[1]);
    BoxMuller(r.v[2], r.v[3], &v[2], &v[3]);
    for (int l = 0; l < 4; l++) v[l] = Affine(v[l], std, mean);
  }
};
struct BernoulliMap {  // 1 where r < threshold, else 0
  uint64_t threshold;
  MS_HD void operator()(const U32x4& r, float* v) const {
    for (int l = 0; l < 4; l++) v[l] = static_cast<uint64_t>(r.v[l]) < threshold ? 1.0f : 0.0f;
  }
};

// The Philox blocks that n values drawn from counter value `offset` touch.
MS_HD int64_t DrawBlocks(int64_t n, uint64_t offset) {
  return (n + static_cast<int64_t>(offset & 3) + 3) / 4;
}

// Block k (< DrawBlocks) of such a draw: its four values through `map`, each that falls inside
// out[0, n) stored by Cv::Store (the device's float -> T conversion).
template <typename Cv, typename T, typename Map>
MS_HD void DrawBlock(T* out, int64_t n, uint64_t seed, uint64_t offset, int64_t k,
                     const Map& map) {
  float v[4];
  map(Block(seed, (offset >> 2) + static_cast<uint64_t>(k)), v);
  const int64_t base = 4 * k - static_cast<int64_t>(offset & 3);
  for (int l = 0; l < 4; l++) {
    const int64_t i = base + l;
    if (i >= 0 && i < n) out[i] = Cv::Store(v[l]);
  }
}

// Bernoulli threshold: an output r is a success iff r < threshold, where
// threshold = round(p * 2^32) (0 for p = 0, 2^32 for p = 1), so P(success) = p up to 2^-33.
inline uint64_t BernoulliThreshold(double p) {
  double t = p * 4294967296.0 + 0.5;
  if (!(t > 0)) return 0;
  if (t >= 4294967296.0) return 4294967296ull;
  return static_cast<uint64_t>(t);
}

}  // namespace philox
}  // namespace minisinga
