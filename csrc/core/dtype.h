// Element types and the float16 <-> float32 conversions used on host and device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#ifdef __CUDACC__
#define MS_HD __host__ __device__ __forceinline__
#else
#define MS_HD inline
#endif

namespace minisinga {

enum class DType : int { kFloat32 = 0, kFloat16 = 1, kInt32 = 2 };

inline size_t SizeOf(DType t) { return t == DType::kFloat16 ? 2 : 4; }
inline const char* DTypeName(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kInt32: return "int32";
  }
  return "?";
}

// IEEE binary16 stored as its bit pattern; arithmetic converts to float.
struct half_t {
  uint16_t bits;
};

// The conversions are branch-free (selects only), so the compiler vectorises the loops that
// use them. Exact: subnormals are renormalised and rounded by float arithmetic, which is
// exact or round-to-nearest-even here (nothing in minisinga changes the rounding mode).
MS_HD float BitsToFloat(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}
MS_HD uint32_t FloatToBits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

MS_HD float HalfToFloat(uint16_t h) {
  const uint32_t em = static_cast<uint32_t>(h & 0x7fff) << 13;  // exponent and mantissa
  const uint32_t exp = em & (0x1fu << 23);
  const uint32_t normal = em + ((127 - 15) << 23);
  // inf / NaN: the largest exponent (NaN payloads kept); zero / subnormal: m * 2^-24,
  // computed as (2^-14 + m * 2^-24) - 2^-14, which is exact.
  const uint32_t special = normal + ((128 - 16) << 23);
  const uint32_t tiny = FloatToBits(BitsToFloat(normal + (1u << 23)) - BitsToFloat(113u << 23));
  const uint32_t mag = exp == (0x1fu << 23) ? special : exp == 0 ? tiny : normal;
  return BitsToFloat(mag | (static_cast<uint32_t>(h & 0x8000) << 16));
}

// Round to nearest even, with overflow to inf and gradual underflow; NaN -> quiet NaN.
MS_HD uint16_t FloatToHalf(float v) {
  const uint32_t x = FloatToBits(v);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t a = x & 0x7fffffff;
  // |v| >= 65536 (and inf, NaN): inf, or a quiet NaN.
  const uint32_t big = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
  // |v| < 2^-14: adding 0.5 aligns the half's 10 subnormal mantissa bits at the bottom of
  // the float's, rounded to nearest even by the addition itself.
  const uint32_t tiny = FloatToBits(BitsToFloat(a) + 0.5f) - FloatToBits(0.5f);
  // Normal: rebias the exponent and round the 13 dropped bits to nearest even; a carry
  // may overflow into the exponent, up to inf, as it should.
  const uint32_t normal = (a + ((15u - 127u) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  const uint32_t h = a >= (143u << 23) ? big : a < (113u << 23) ? tiny : normal;
  return static_cast<uint16_t>(h | sign);
}

// Load/store any storage type as float: kernels compute in float32.
template <typename T>
struct Cvt {
  static MS_HD float Load(T v) { return static_cast<float>(v); }
  static MS_HD T Store(float v) { return static_cast<T>(v); }
};
template <>
struct Cvt<int32_t> {  // double holds every int32 exactly
  static MS_HD double Load(int32_t v) { return static_cast<double>(v); }
  // Truncated, saturating (a NaN gives 0): a bare cast of NaN or of a value out of range
  // is undefined behaviour (x86 gives INT32_MIN), e.g. exp(30) or log(-5) on int32.
  static MS_HD int32_t Store(double v) {
    return v != v ? 0
                  : v >= 2147483647.0 ? 2147483647
                                      : v <= -2147483648.0 ? (-2147483647 - 1) : static_cast<int32_t>(v);
  }
};
template <>
struct Cvt<half_t> {
  static MS_HD float Load(half_t v) { return HalfToFloat(v.bits); }
  static MS_HD half_t Store(float v) { return half_t{FloatToHalf(v)}; }
};

}  // namespace minisinga
