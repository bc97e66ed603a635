// The elementwise ops as one-line functors, compiled for host and device alike.
// Unary ops see (x, a, b): a and b are the op's scalar parameters.
// Compute type C is float for float32/float16 and double for int32 (exact for int32).
#pragma once

#include <cmath>

#include "core/dtype.h"

namespace minisinga {
namespace ew {

// One math function of the C library, for float (the f-suffixed one) and double.
#define MS_MATH_FN(Name, fn)                          \
  MS_HD float Name(float x) { return fn##f(x); }      \
  MS_HD double Name(double x) { return fn(x); }
MS_MATH_FN(Exp, exp)
MS_MATH_FN(Log, log)
MS_MATH_FN(Log1p, log1p)
MS_MATH_FN(Sqrt, sqrt)
MS_MATH_FN(Tanh, tanh)
MS_MATH_FN(Erf, erf)
MS_MATH_FN(Abs, fabs)
MS_MATH_FN(Floor, floor)
MS_MATH_FN(Ceil, ceil)
MS_MATH_FN(Round, round)  // halves away from zero
MS_MATH_FN(Rint, rint)    // halves to even (the default rounding mode)
MS_MATH_FN(Sin, sin)
MS_MATH_FN(Cos, cos)
MS_MATH_FN(Tan, tan)
MS_MATH_FN(Asin, asin)
MS_MATH_FN(Acos, acos)
MS_MATH_FN(Atan, atan)
MS_MATH_FN(Sinh, sinh)
MS_MATH_FN(Cosh, cosh)
MS_MATH_FN(Asinh, asinh)
MS_MATH_FN(Acosh, acosh)
MS_MATH_FN(Atanh, atanh)
#undef MS_MATH_FN
MS_HD float Pow(float x, float y) { return powf(x, y); }
MS_HD double Pow(double x, double y) { return pow(x, y); }
template <typename C>
MS_HD C Max(C x, C y) { return x > y ? x : y; }
template <typename C>
MS_HD C Min(C x, C y) { return x < y ? x : y; }
template <typename C>
MS_HD C Sigmoid(C x) {  // stable on both sides
  return x >= 0 ? C(1) / (C(1) + Exp(-x)) : Exp(x) / (C(1) + Exp(x));
}
template <typename C>
MS_HD C Softplus(C x) {
  return x > C(20) ? x : (x < C(-20) ? Exp(x) : Log1p(Exp(x)));
}

// X(Name, expression in x, a, b)
#define MS_UNARY_OPS(X)                                  \
  X(Neg, -x)                                             \
  X(Abs, Abs(x))                                         \
  X(Sign, C((x > C(0)) - (x < C(0))))                    \
  X(Exp, Exp(x))                                         \
  X(Log, Log(x))                                         \
  X(Sqrt, Sqrt(x))                                       \
  X(Square, x * x)                                       \
  X(Reciprocal, C(1) / x)                                \
  X(Relu, x > C(0) ? x : C(0))                           \
  X(Sigmoid, Sigmoid(x))                                 \
  X(Tanh, Tanh(x))                                       \
  X(Softplus, Softplus(x))                               \
  X(Softsign, x / (C(1) + Abs(x)))                       \
  X(Erf, Erf(x))                                         \
  X(Sin, Sin(x))                                         \
  X(Cos, Cos(x))                                         \
  X(Floor, Floor(x))                                     \
  X(Ceil, Ceil(x))                                       \
  X(Round, Round(x))                                     \
  X(Rint, Rint(x))                                       \
  X(Tan, Tan(x))                                         \
  X(Asin, Asin(x))                                       \
  X(Acos, Acos(x))                                       \
  X(Atan, Atan(x))                                       \
  X(Sinh, Sinh(x))                                       \
  X(Cosh, Cosh(x))                                       \
  X(Asinh, Asinh(x))                                     \
  X(Acosh, Acosh(x))                                     \
  X(Atanh, Atanh(x))                                     \
  X(AddScalar, x + a)                                    \
  X(MulScalar, x * a)                                    \
  X(RSubScalar, a - x)                                   \
  X(RDivScalar, a / x)                                   \
  X(PowScalar, Pow(x, a))                                \
  X(RPowScalar, Pow(a, x))                               \
  X(MaxScalar, Max(x, a))                                \
  X(MinScalar, Min(x, a))                                \
  X(Clip, Min(Max(x, a), b))                             \
  X(LeakyRelu, x > C(0) ? x : a * x)                     \
  X(Elu, x > C(0) ? x : a * (Exp(x) - C(1)))             \
  X(Selu, b * (x > C(0) ? x : a * (Exp(x) - C(1))))      \
  X(HardSigmoid, Min(Max(a * x + b, C(0)), C(1)))        \
  X(LtScalar, C(x < a))                                  \
  X(LeScalar, C(x <= a))                                 \
  X(GtScalar, C(x > a))                                  \
  X(GeScalar, C(x >= a))                                 \
  X(EqScalar, C(x == a))                                 \
  X(NeScalar, C(x != a))

#define MS_BINARY_OPS(X)        \
  X(Add, x + y)                 \
  X(Sub, x - y)                 \
  X(Mul, x * y)                 \
  X(Div, x / y)                 \
  X(Pow, Pow(x, y))             \
  X(Maximum, Max(x, y))         \
  X(Minimum, Min(x, y))         \
  X(Lt, C(x < y))               \
  X(Le, C(x <= y))              \
  X(Gt, C(x > y))               \
  X(Ge, C(x >= y))              \
  X(Eq, C(x == y))              \
  X(Ne, C(x != y))              \
  X(ReluBackward, y > C(0) ? x : C(0))

#define MS_DEFINE_UNARY(Name, expr)                     \
  struct Name##F {                                      \
    template <typename C>                               \
    MS_HD C operator()(C x, C a, C b) const {           \
      (void)a;                                          \
      (void)b;                                          \
      return expr;                                      \
    }                                                   \
  };
#define MS_DEFINE_BINARY(Name, expr)          \
  struct Name##F {                            \
    template <typename C>                     \
    MS_HD C operator()(C x, C y) const {      \
      return expr;                            \
    }                                         \
  };
MS_UNARY_OPS(MS_DEFINE_UNARY)
MS_BINARY_OPS(MS_DEFINE_BINARY)
#undef MS_DEFINE_UNARY
#undef MS_DEFINE_BINARY

// Compute type for a storage type.
template <typename T>
struct ComputeT {
  using type = float;
};
template <>
struct ComputeT<int32_t> {
  using type = double;
};

}  // namespace ew
}  // namespace minisinga
