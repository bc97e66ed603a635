// CPU reductions over (outer, r, inner). Work items are (outer row, chunk of inner); when
// there are too few of them to keep the threads busy (outer == 1, or a small output), the
// reduced axis is also split into parts whose partial results are combined in order.
#include "kernels/reduce.h"

#include <omp.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

constexpr int64_t kInnerChunk = 256;  // inner elements per work item (a stack accumulator)
constexpr int64_t kArgBlock = 512;    // argmax/argmin of a row: block size of the first pass

// Values as compared (Cmp) and summed (Sum) for each storage type.
template <typename T>
struct RT {
  using Cmp = float;
  using Sum = double;
  static float Val(T v) { return Cvt<T>::Load(v); }
};
template <>
struct RT<int32_t> {
  using Cmp = int32_t;
  using Sum = int64_t;
  static int32_t Val(int32_t v) { return v; }
};

inline bool IsNan(float v) { return v != v; }
inline bool IsNan(int32_t) { return false; }

template <typename C>
C Lowest() {
  return std::is_floating_point<C>::value ? -std::numeric_limits<C>::infinity()
                                          : std::numeric_limits<C>::lowest();
}
template <typename C>
C Highest() {
  return std::is_floating_point<C>::value ? std::numeric_limits<C>::infinity()
                                          : std::numeric_limits<C>::max();
}

// Max (kMax) or min of p[0, n): a plain max that vectorises, plus a NaN flag.
template <typename T, bool kMax>
typename RT<T>::Cmp RowExtreme(const T* p, int64_t n) {
  using C = typename RT<T>::Cmp;
  C m = kMax ? Lowest<C>() : Highest<C>();
  int nan = 0;
  if constexpr (kMax) {
#pragma omp simd reduction(max : m) reduction(| : nan)
    for (int64_t j = 0; j < n; j++) {
      C v = RT<T>::Val(p[j]);
      m = v > m ? v : m;
      nan |= IsNan(v);
    }
  } else {
#pragma omp simd reduction(min : m) reduction(| : nan)
    for (int64_t j = 0; j < n; j++) {
      C v = RT<T>::Val(p[j]);
      m = v < m ? v : m;
      nan |= IsNan(v);
    }
  }
  return nan ? std::numeric_limits<C>::quiet_NaN() : m;
}

// Each op: Acc, Init(k0), Step(acc, value, k), Combine(earlier, later), Row(p, k0, n).
template <typename T>
struct SumOp {
  using Acc = typename RT<T>::Sum;
  static Acc Init(int64_t) { return 0; }
  static void Step(Acc& a, T v, int64_t) { a += static_cast<Acc>(RT<T>::Val(v)); }
  static Acc Combine(Acc a, Acc b) { return a + b; }
  static Acc Row(const T* p, int64_t, int64_t n) {
    Acc s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < n; j++) s += static_cast<Acc>(RT<T>::Val(p[j]));
    return s;
  }
};

// Max (kMax) or min; a NaN anywhere gives NaN.
template <typename T, bool kMax>
struct ExtremeOp {
  using Acc = typename RT<T>::Cmp;
  static Acc Better(Acc a, Acc v) {
    return ((kMax ? v > a : v < a) || IsNan(v)) ? v : a;
  }
  static Acc Init(int64_t) { return kMax ? Lowest<Acc>() : Highest<Acc>(); }
  static void Step(Acc& a, T v, int64_t) { a = Better(a, RT<T>::Val(v)); }
  static Acc Combine(Acc a, Acc b) { return Better(a, b); }
  static Acc Row(const T* p, int64_t, int64_t n) { return RowExtreme<T, kMax>(p, n); }
};

// Index of the first max/min; the first NaN wins over any number.
template <typename T, bool kMax>
struct ArgOp {
  using C = typename RT<T>::Cmp;
  struct Acc {
    C v;
    int64_t k;
  };
  static bool Takes(C a, C v) {  // does v (later) replace a (earlier)?
    return (kMax ? v > a : v < a) || (IsNan(v) && !IsNan(a));
  }
  static Acc Init(int64_t k0) { return {kMax ? Lowest<C>() : Highest<C>(), k0}; }
  static void Step(Acc& a, T x, int64_t k) {
    C v = RT<T>::Val(x);
    if (Takes(a.v, v)) a = {v, k};
  }
  static Acc Combine(Acc a, Acc b) { return Takes(a.v, b.v) ? b : a; }
  // Blocks whose extreme beats the best so far are scanned again for its first index.
  static Acc Row(const T* p, int64_t k0, int64_t n) {
    Acc a = Init(k0);
    for (int64_t b = 0; b < n && !IsNan(a.v); b += kArgBlock) {
      const int64_t e = std::min(n, b + kArgBlock);
      const C m = RowExtreme<T, kMax>(p + b, e - b);
      if (!Takes(a.v, m)) continue;
      for (int64_t j = b; j < e; j++) {
        const C v = RT<T>::Val(p[j]);
        if (IsNan(m) ? IsNan(v) : v == m) {
          a = {m, k0 + j};
          break;
        }
      }
    }
    return a;
  }
};

// acc[0, w) <- reduction of x[o, k0:k1, i0:i0+w).
template <typename Op, typename T>
void Accumulate(const T* x, int64_t r, int64_t inner, int64_t o, int64_t i0, int64_t w,
                int64_t k0, int64_t k1, typename Op::Acc* acc) {
  if (inner == 1) {
    acc[0] = Op::Row(x + o * r + k0, k0, k1 - k0);
    return;
  }
  for (int64_t i = 0; i < w; i++) acc[i] = Op::Init(k0);
  for (int64_t k = k0; k < k1; k++) {
    const T* xr = x + (o * r + k) * inner + i0;
    for (int64_t i = 0; i < w; i++) Op::Step(acc[i], xr[i], k);
  }
}

// Reduces x over r and calls store(output index, acc) once per output element.
template <typename Op, typename T, typename Store>
void Run(const T* x, int64_t outer, int64_t r, int64_t inner, Store store) {
  using Acc = typename Op::Acc;
  const int64_t chunks = (inner + kInnerChunk - 1) / kInnerChunk;
  const int64_t items = outer * chunks;
  const int64_t total = outer * r * inner;
  const bool par = total > MS_OMP_MIN;
  const int64_t threads = omp_get_max_threads();
  int64_t parts = 1;
  if (par && items < 2 * threads) parts = std::max<int64_t>(1, std::min(r, 4 * threads / items));

  if (parts == 1) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t it = 0; it < items; it++) {
      const int64_t o = it / chunks, i0 = it % chunks * kInnerChunk;
      const int64_t w = std::min(kInnerChunk, inner - i0);
      Acc acc[kInnerChunk];
      Accumulate<Op>(x, r, inner, o, i0, w, 0, r, acc);
      for (int64_t i = 0; i < w; i++) store(o * inner + i0 + i, acc[i]);
    }
    return;
  }
  // Few outputs, long reduced axis: partial results per part of r, then combined in order.
  const int64_t nout = outer * inner;
  std::vector<Acc> partial(parts * nout);
#pragma omp parallel for schedule(static)
  for (int64_t it = 0; it < items * parts; it++) {
    const int64_t p = it % parts, item = it / parts;
    const int64_t o = item / chunks, i0 = item % chunks * kInnerChunk;
    const int64_t w = std::min(kInnerChunk, inner - i0);
    const int64_t k0 = r * p / parts, k1 = r * (p + 1) / parts;
    Accumulate<Op>(x, r, inner, o, i0, w, k0, k1, &partial[p * nout + o * inner + i0]);
  }
#pragma omp parallel for schedule(static) if (nout > MS_OMP_MIN)
  for (int64_t j = 0; j < nout; j++) {
    Acc a = partial[j];
    for (int64_t p = 1; p < parts; p++) a = Op::Combine(a, partial[p * nout + j]);
    store(j, a);
  }
}

template <typename Tout, typename V>
Tout Put(V v) {
  if constexpr (std::is_same<Tout, int32_t>::value) {
    return static_cast<int32_t>(v);  // int32 sums wrap, like numpy's int32 arithmetic
  } else {
    return Cvt<Tout>::Store(static_cast<float>(v));
  }
}

template <typename Tin, typename Tout>
void ReduceT(ReduceOp op, const Tin* x, Tout* y, int64_t outer, int64_t r, int64_t inner) {
  switch (op) {
    case ReduceOp::kSum:
      return Run<SumOp<Tin>>(x, outer, r, inner, [=](int64_t j, auto a) { y[j] = Put<Tout>(a); });
    case ReduceOp::kMean: {
      const double inv = r > 0 ? 1.0 / static_cast<double>(r) : 0.0;
      return Run<SumOp<Tin>>(x, outer, r, inner,
                             [=](int64_t j, auto a) { y[j] = Put<Tout>(a * inv); });
    }
    case ReduceOp::kMax:
      return Run<ExtremeOp<Tin, true>>(x, outer, r, inner,
                                       [=](int64_t j, auto a) { y[j] = Put<Tout>(a); });
    case ReduceOp::kMin:
      return Run<ExtremeOp<Tin, false>>(x, outer, r, inner,
                                        [=](int64_t j, auto a) { y[j] = Put<Tout>(a); });
  }
  MS_FAIL("reduce: unknown op " << static_cast<int>(op));
}

template <typename T>
void ArgReduceT(bool is_max, const T* x, int32_t* y, int64_t outer, int64_t r, int64_t inner) {
  auto store = [=](int64_t j, auto a) { y[j] = static_cast<int32_t>(a.k); };
  if (is_max)
    Run<ArgOp<T, true>>(x, outer, r, inner, store);
  else
    Run<ArgOp<T, false>>(x, outer, r, inner, store);
}

}  // namespace

void Reduce(Context*, ReduceOp op, DType in_dt, DType out_dt, const void* x, void* y,
            int64_t outer, int64_t r, int64_t inner) {
  if (in_dt == out_dt) {
    MS_TYPE_SWITCH(in_dt, T,
                   ReduceT<T, T>(op, static_cast<const T*>(x), static_cast<T*>(y), outer, r,
                                 inner));
  } else if (in_dt == DType::kFloat16 && out_dt == DType::kFloat32) {
    ReduceT<half_t, float>(op, static_cast<const half_t*>(x), static_cast<float*>(y), outer, r,
                           inner);
  } else if (in_dt == DType::kFloat32 && out_dt == DType::kFloat16) {
    ReduceT<float, half_t>(op, static_cast<const float*>(x), static_cast<half_t*>(y), outer, r,
                           inner);
  } else {
    MS_FAIL("reduce: unsupported dtype pair " << DTypeName(in_dt) << " -> "
                                              << DTypeName(out_dt));
  }
}

void ArgReduce(Context*, bool is_max, DType dt, const void* x, int32_t* y, int64_t outer,
               int64_t r, int64_t inner) {
  MS_TYPE_SWITCH(dt, T, ArgReduceT<T>(is_max, static_cast<const T*>(x), y, outer, r, inner));
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
