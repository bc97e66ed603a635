// CPU elementwise kernels: flat loops for unary ops, strided loops (inner axis
// specialised for unit/zero strides so it vectorises) for broadcasting binary ops.
#include "kernels/elementwise.h"

#include <algorithm>

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

constexpr int64_t kChunk = 16384;  // elements per parallel work item

template <typename T, typename F>
void UnaryLoop(F f, const T* x, T* y, int64_t n, double a, double b) {
  using C = typename ew::ComputeT<T>::type;
  const C ca = static_cast<C>(a), cb = static_cast<C>(b);
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) y[i] = Cvt<T>::Store(f(C(Cvt<T>::Load(x[i])), ca, cb));
}

// Element offsets of the first element of `row` (all axes but the last) per operand.
inline void RowOffsets(const StridedPlan& p, int64_t row, int64_t* off) {
  for (int k = 0; k < p.nin; k++) off[k] = 0;
  for (int d = p.ndim - 2; d >= 0; d--) {
    int64_t i = row % p.shape[d];
    row /= p.shape[d];
    for (int k = 0; k < p.nin; k++) off[k] += i * p.stride[k][d];
  }
}

// Runs body(row, begin, end, off) over rows split into chunks of the last axis.
template <typename Body>
void ForRows(const StridedPlan& p, Body body) {
  const int64_t inner = p.shape[p.ndim - 1];
  if (p.numel == 0 || inner == 0) return;
  const int64_t rows = p.numel / inner;
  const int64_t chunks = (inner + kChunk - 1) / kChunk;
  const int64_t items = rows * chunks;
#pragma omp parallel for schedule(static) if (p.numel > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    int64_t row = it / chunks, c = it % chunks;
    int64_t off[3];
    RowOffsets(p, row, off);
    body(row * inner, c * kChunk, std::min(inner, (c + 1) * kChunk), off);
  }
}

template <typename T, typename F>
void BinaryLoop(F f, const T* x, const T* y, T* out, const StridedPlan& p) {
  using C = typename ew::ComputeT<T>::type;
  const int last = p.ndim - 1;
  const int64_t sx = p.stride[0][last], sy = p.stride[1][last];
  ForRows(p, [&](int64_t obase, int64_t b, int64_t e, const int64_t* off) {
    const T* xr = x + off[0];
    const T* yr = y + off[1];
    T* o = out + obase;
    if (sx == 1 && sy == 1) {
      for (int64_t i = b; i < e; i++)
        o[i] = Cvt<T>::Store(f(C(Cvt<T>::Load(xr[i])), C(Cvt<T>::Load(yr[i]))));
    } else if (sx == 1 && sy == 0) {
      const C yv = Cvt<T>::Load(yr[0]);
      for (int64_t i = b; i < e; i++) o[i] = Cvt<T>::Store(f(C(Cvt<T>::Load(xr[i])), yv));
    } else if (sx == 0 && sy == 1) {
      const C xv = Cvt<T>::Load(xr[0]);
      for (int64_t i = b; i < e; i++) o[i] = Cvt<T>::Store(f(xv, C(Cvt<T>::Load(yr[i]))));
    } else {
      for (int64_t i = b; i < e; i++)
        o[i] = Cvt<T>::Store(f(C(Cvt<T>::Load(xr[i * sx])), C(Cvt<T>::Load(yr[i * sy]))));
    }
  });
}

template <typename T>
void UnaryT(UnaryOp op, const T* x, T* y, int64_t n, double a, double b) {
  switch (op) {
#define MS_CASE(Name, expr)                          \
  case UnaryOp::k##Name:                             \
    return UnaryLoop<T>(ew::Name##F(), x, y, n, a, b);
    MS_UNARY_OPS(MS_CASE)
#undef MS_CASE
    default:
      MS_FAIL("unary: unknown op " << static_cast<int>(op));
  }
}

template <typename T>
void BinaryT(BinaryOp op, const T* x, const T* y, T* out, const StridedPlan& plan) {
  switch (op) {
#define MS_CASE(Name, expr)                                \
  case BinaryOp::k##Name:                                  \
    return BinaryLoop<T>(ew::Name##F(), x, y, out, plan);
    MS_BINARY_OPS(MS_CASE)
#undef MS_CASE
    default:
      MS_FAIL("binary: unknown op " << static_cast<int>(op));
  }
}

}  // namespace

void Unary(Context*, UnaryOp op, DType dt, const void* x, void* y, int64_t n, double a,
           double b) {
  MS_TYPE_SWITCH(dt, T, UnaryT<T>(op, static_cast<const T*>(x), static_cast<T*>(y), n, a, b));
}

void Binary(Context*, BinaryOp op, DType dt, const void* x, const void* y, void* out,
            const StridedPlan& plan) {
  MS_TYPE_SWITCH(dt, T,
                 BinaryT<T>(op, static_cast<const T*>(x), static_cast<const T*>(y),
                            static_cast<T*>(out), plan));
}

namespace {

template <typename TC, typename T>
void WhereT(const TC* c, const T* x, const T* y, T* o, const StridedPlan& p) {
  const int last = p.ndim - 1;
  const int64_t s0 = p.stride[0][last], s1 = p.stride[1][last], s2 = p.stride[2][last];
  ForRows(p, [&](int64_t obase, int64_t b, int64_t e, const int64_t* off) {
    for (int64_t i = b; i < e; i++)
      o[obase + i] = Cvt<TC>::Load(c[off[0] + i * s0]) != 0 ? x[off[1] + i * s1]
                                                             : y[off[2] + i * s2];
  });
}

template <typename T>
void FillT(T* o, int64_t n, double value) {
  const T v = Cvt<T>::Store(static_cast<typename ew::ComputeT<T>::type>(value));
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) o[i] = v;
}

}  // namespace

void Where(Context*, DType cond_dt, DType dt, const void* cond, const void* x, const void* y,
           void* out, const StridedPlan& p) {
  MS_TYPE_SWITCH(cond_dt, TC, MS_TYPE_SWITCH(dt, T, WhereT<TC, T>(static_cast<const TC*>(cond),
                                                                  static_cast<const T*>(x),
                                                                  static_cast<const T*>(y),
                                                                  static_cast<T*>(out), p)));
}

void Fill(Context*, DType dt, void* out, int64_t n, double value) {
  MS_TYPE_SWITCH(dt, T, FillT<T>(static_cast<T*>(out), n, value));
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
