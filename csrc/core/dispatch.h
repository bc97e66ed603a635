// Picks the CPU or CUDA implementation of a kernel, and a C++ type for a DType.
#pragma once

#include "core/device.h"
#include "core/dtype.h"

// Kernels live in minisinga::kernels::cpu / ::cuda with identical signatures whose first
// parameter is the Context*.
#ifdef MS_WITH_CUDA
#define MS_DISPATCH(ctx, fn, ...)                                      \
  ((ctx)->is_cuda() ? ::minisinga::kernels::cuda::fn(ctx, __VA_ARGS__) \
                    : ::minisinga::kernels::cpu::fn(ctx, __VA_ARGS__))
#else
#define MS_DISPATCH(ctx, fn, ...) ::minisinga::kernels::cpu::fn(ctx, __VA_ARGS__)
#endif

// MS_TYPE_SWITCH(dtype, T, body): runs body with T = float, half_t or int32_t.
#define MS_TYPE_SWITCH(dtype, T, ...)             \
  switch (dtype) {                                \
    case ::minisinga::DType::kFloat32: {          \
      using T = float;                            \
      __VA_ARGS__;                                \
      break;                                      \
    }                                             \
    case ::minisinga::DType::kFloat16: {          \
      using T = ::minisinga::half_t;              \
      __VA_ARGS__;                                \
      break;                                      \
    }                                             \
    case ::minisinga::DType::kInt32: {            \
      using T = int32_t;                          \
      __VA_ARGS__;                                \
      break;                                      \
    }                                             \
  }

// MS_ESIZE_SWITCH(esize, U, body): runs body with U, an unsigned integer of esize bytes (for
// kernels that move elements without arithmetic).
#define MS_ESIZE_SWITCH(esize, U, ...)                                        \
  switch (esize) {                                                            \
    case 1: { using U = uint8_t; __VA_ARGS__; break; }                        \
    case 2: { using U = uint16_t; __VA_ARGS__; break; }                       \
    case 4: { using U = uint32_t; __VA_ARGS__; break; }                       \
    case 8: { using U = uint64_t; __VA_ARGS__; break; }                       \
    default: MS_FAIL("unsupported element size " << (esize));                 \
  }

namespace minisinga {
// f(float{}) or f(half_t{}) for a float dtype (checked before): the element type of a
// float32 or float16 tensor, for calling a kernel's overload.
template <typename F>
void FloatSwitch(DType dt, F f) {
  if (dt == DType::kFloat16)
    f(half_t{});
  else
    f(float{});
}

// f(T{}, S{}) for the float type pairs (a, b) that kernels with two element types have:
// (float32, float32), (float16, float16), (float16, float32) -- e.g. float16 activations or
// parameters beside float32 per-channel operands or optimizer state. b is read only where a
// is float16 (callers check the pair before).
template <typename F>
void FloatPairSwitch(DType a, DType b, F f) {
  if (a == DType::kFloat32)
    f(float{}, float{});
  else if (b == DType::kFloat16)
    f(half_t{}, half_t{});
  else
    f(half_t{}, float{});
}
}  // namespace minisinga

// Below this many elements a CPU loop runs on one thread.
#define MS_OMP_MIN 32768
