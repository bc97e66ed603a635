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

MS_HD float HalfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t f;
  if (exp == 0) {
    if (man == 0) {
      f = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while ((man & 0x400) == 0) {
        man <<= 1;
        exp--;
      }
      man &= 0x3ff;
      f = sign | (exp << 23) | (man << 13);
    }
  } else if (exp == 31) {
    f = sign | 0x7f800000u | (man << 13);
  } else {
    f = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float out;
  memcpy(&out, &f, 4);
  return out;
}

// Round to nearest even, with overflow to inf and gradual underflow.
MS_HD uint16_t FloatToHalf(float v) {
  uint32_t x;
  memcpy(&x, &v, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000u) return sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0);  // inf/nan
  if (absx >= 0x477ff000u) return sign | 0x7c00;  // rounds past 65504
  if (absx < 0x38800000u) {  // result is subnormal or zero
    if (absx < 0x33000000u) return sign;
    uint32_t e = absx >> 23;
    uint32_t m = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // 14 - (e - 127) + 10 + ... => bits to drop
    uint32_t r = m >> (shift);
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1))) r++;
    return sign | r;
  }
  uint32_t r = ((absx - 0x38000000u) >> 13);
  uint32_t rem = absx & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
  return sign | r;
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
  static MS_HD int32_t Store(double v) { return static_cast<int32_t>(v); }
};
template <>
struct Cvt<half_t> {
  static MS_HD float Load(half_t v) { return HalfToFloat(v.bits); }
  static MS_HD half_t Store(float v) { return half_t{FloatToHalf(v)}; }
};

}  // namespace minisinga
