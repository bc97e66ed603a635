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
MS_MATH_FN(Log1p, log1p)
MS_MATH_FN(Sqrt, sqrt)
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

// float exp, log, tanh and erf. On a GPU the CUDA library's. On the host our own, branch-free (selects
// only), so the CPU's loops vectorise where the C library's scalar calls would not (10-25x):
// Cephes' polynomials (Moshier), within a few ulp of the C library's results.
#ifdef __CUDA_ARCH__
MS_HD float Exp(float x) { return expf(x); }
MS_HD float Log(float x) { return logf(x); }
MS_HD float Tanh(float x) { return tanhf(x); }
MS_HD float Erf(float x) { return erff(x); }
#else
// exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln(2) / 2; inf above 88.72, 0 below
// -87.34 (no subnormal results), NaN kept.
inline float Exp(float x) {
  const float hi = 88.7228391f, lo = -87.3365448f;
  const float xc = x > hi ? hi : (x < lo ? lo : (x == x ? x : 0.0f));
  const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;  // round to nearest
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;     // x - n ln2, two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t k = static_cast<int32_t>(n), k1 = k / 2;  // n = 128 needs two factors
  const float y = e * BitsToFloat(uint32_t(k1 + 127) << 23) *
                  BitsToFloat(uint32_t(k - k1 + 127) << 23);
  return x > hi ? INFINITY : (x < lo ? 0.0f : (x == x ? y : x));
}
// log(x) = e ln 2 + log(m), x = m 2^e with m in [sqrt(1/2), sqrt(2)) (subnormals scaled up
// first); -inf at 0, NaN below 0, inf and NaN kept.
inline float Log(float x) {
  const bool tiny = x < 1.17549435e-38f;  // subnormal (or 0, negative): scale by 2^23
  const uint32_t u = FloatToBits(tiny ? x * 8388608.0f : x);
  const float m1 = BitsToFloat((u & 0x007fffffu) | 0x3f800000u);  // in [1, 2)
  const bool big = m1 > 1.41421356f;
  const float m = big ? 0.5f * m1 : m1;
  const float e = static_cast<float>(static_cast<int32_t>((u >> 23) & 0xffu) - 127) +
                  (big ? 1.0f : 0.0f) - (tiny ? 23.0f : 0.0f);
  const float f = m - 1.0f, z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float y = (f + (p * f * z - 2.12194440e-4f * e - 0.5f * z)) + 0.693359375f * e;
  return x > 0.0f ? (x < INFINITY ? y : x) : (x == 0.0f ? -INFINITY : (x < 0.0f ? NAN : x));
}
// An odd polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1) above, with x's sign.
inline float Tanh(float x) {
  const float ax = fabsf(x), z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float big = copysignf(1.0f - 2.0f / (Exp(2.0f * ax) + 1.0f), x);
  return ax < 0.625f ? small : big;
}
// erf: x p(x^2) below |x| = 0.921875, else 1 - exp(-x^2) q(1/|x|) with x's sign; p and q
// are our least-squares fits (relative error) to erf(x)/x and erfc(x) exp(x^2), within 3 ulp
// of the exact value (test_exp_family_accuracy_over_the_whole_range).
inline float Erf(float x) {
  const float ax = fabsf(x), z = x * x;
  float p = -5.9862108334e-04f;
  p = p * z + 4.9921834248e-03f;
  p = p * z - 2.6765864872e-02f;
  p = p * z + 1.1281792950e-01f;
  p = p * z - 3.7612491162e-01f;
  p = p * z + 1.1283791491e+00f;
  const float u = 1.0f / ax;
  float q = -4.8873199425e-03f;
  q = q * u + 7.0702299229e-03f;
  q = q * u + 6.6666931223e-02f;
  q = q * u - 2.8932498701e-01f;
  q = q * u + 5.2858905617e-01f;
  q = q * u - 4.8465270631e-01f;
  q = q * u + 4.5217963080e-02f;
  q = q * u + 5.5860963397e-01f;
  q = q * u + 2.9474798671e-04f;
  const float big = copysignf(1.0f - Exp(-z) * q, x);
  return ax < 0.921875f ? x * p : big;
}
#endif
MS_HD double Erf(double x) { return erf(x); }
MS_HD double Exp(double x) { return exp(x); }
MS_HD double Log(double x) { return log(x); }
MS_HD double Tanh(double x) { return tanh(x); }
MS_HD float Pow(float x, float y) { return powf(x, y); }
MS_HD double Pow(double x, double y) { return pow(x, y); }
// NaN in either operand gives NaN (numpy's maximum/minimum, clip).
template <typename C>
MS_HD C Max(C x, C y) { return (x > y || x != x) ? x : y; }
template <typename C>
MS_HD C Min(C x, C y) { return (x < y || x != x) ? x : y; }
template <typename C>
MS_HD C Sigmoid(C x) {  // stable on both sides, one exp
  const C e = Exp(x >= C(0) ? -x : x), s = C(1) / (C(1) + e);
  return x >= C(0) ? s : e * s;
}
// GELU, x Phi(x) with Phi the normal CDF; its tanh approximation (PyTorch's approximate="tanh")
// x/2 (1 + tanh(u)); and the derivatives of both.
template <typename C>
MS_HD C NormalCdf(C x) { return C(0.5) * (C(1) + Erf(x * C(0.70710678118654752))); }
template <typename C>
MS_HD C GeluTanhU(C x) { return C(0.79788456080286536) * (x + C(0.044715) * x * x * x); }
template <typename C>
MS_HD C Gelu(C x) { return x * NormalCdf(x); }
template <typename C>
MS_HD C GeluGrad(C x) {  // Phi(x) + x phi(x)
  return NormalCdf(x) + x * C(0.39894228040143268) * Exp(C(-0.5) * x * x);
}
template <typename C>
MS_HD C GeluTanh(C x) { return C(0.5) * x * (C(1) + Tanh(GeluTanhU(x))); }
template <typename C>
MS_HD C GeluTanhGrad(C x) {  // (1 + t)/2 + x/2 (1 - t^2) du/dx, t = tanh(u)
  const C t = Tanh(GeluTanhU(x));
  const C du = C(0.79788456080286536) * (C(1) + C(3 * 0.044715) * x * x);
  return C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * du;
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
  X(Gelu, Gelu(x))                                       \
  X(GeluTanh, GeluTanh(x))                               \
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
  X(NeScalar, C(x != a))                                 \
  X(DivScalar, x / a)                                    \
  X(FloorDivScalar, Floor(x / a))                        \
  X(RFloorDivScalar, Floor(a / x))

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
  X(ReluBackward, y > C(0) ? x : C(0)) \
  X(SigmoidBackward, x * (y * (C(1) - y))) \
  X(TanhBackward, x * (C(1) - y * y)) \
  X(GeluBackward, x * GeluGrad(y)) \
  X(GeluTanhBackward, x * GeluTanhGrad(y)) \
  X(FloorDiv, Floor(x / y))

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
