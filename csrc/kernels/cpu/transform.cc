// CPU transform kernels: a strided copy (row memcpy, broadcast fill, gather, or a tiled
// transpose when the source's contiguous axis is not the destination's), gather/scatter for
// take, one_hot. Elements are moved as opaque 1/2/4/8-byte words.
#include "kernels/transform.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/common.h"
#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

constexpr int64_t kChunk = 16384;  // elements of one row per parallel work item
constexpr int64_t kTile = 32;      // transpose tile edge
constexpr int64_t kShortRows = 4096;  // rows shorter than this: this many elements per item

// Axes other than the one or two handled by the inner loops, for offset decomposition.
struct OuterAxes {
  int n = 0;
  int64_t shape[kMaxDims], ss[kMaxDims], ds[kMaxDims];
  void Offsets(int64_t idx, int64_t* so, int64_t* dso) const {
    int64_t s = 0, d = 0;
    for (int k = n - 1; k >= 0; k--) {
      const int64_t i = idx % shape[k];
      idx /= shape[k];
      s += i * ss[k];
      d += i * ds[k];
    }
    *so = s;
    *dso = d;
  }
  // Offsets of the next row after the one whose per-axis indices are pos (an odometer).
  void Next(int64_t* pos, int64_t* so, int64_t* dso) const {
    for (int k = n - 1; k >= 0; k--) {
      *so += ss[k];
      *dso += ds[k];
      if (++pos[k] < shape[k]) return;
      *so -= ss[k] * shape[k];
      *dso -= ds[k] * shape[k];
      pos[k] = 0;
    }
  }
  void Indices(int64_t idx, int64_t* pos) const {
    for (int k = n - 1; k >= 0; k--) {
      pos[k] = idx % shape[k];
      idx /= shape[k];
    }
  }
};

OuterAxes Outer(const CopyPlan& p, int skip1, int skip2) {
  OuterAxes o;
  for (int d = 0; d < p.ndim; d++) {
    if (d == skip1 || d == skip2) continue;
    o.shape[o.n] = p.shape[d];
    o.ss[o.n] = p.src_stride[d];
    o.ds[o.n] = p.dst_stride[d];
    o.n++;
  }
  return o;
}

// Tiled copy over axes j (contiguous in src) and `last` (contiguous in dst).
template <typename U>
void TransposeTiles(const U* src, U* dst, const CopyPlan& p, int j) {
  const int last = p.ndim - 1;
  const int64_t nj = p.shape[j], nl = p.shape[last];
  const int64_t dj = p.dst_stride[j], sl = p.src_stride[last];
  const OuterAxes outer = Outer(p, j, last);
  const int64_t tj = (nj + kTile - 1) / kTile, tl = (nl + kTile - 1) / kTile;
  const int64_t items = p.numel / (nj * nl) * tj * tl;
#pragma omp parallel for schedule(static) if (p.numel > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t o = it / (tj * tl), t = it % (tj * tl);
    const int64_t a0 = t / tl * kTile, b0 = t % tl * kTile;
    const int64_t a1 = std::min(nj, a0 + kTile), b1 = std::min(nl, b0 + kTile);
    int64_t so, dso;
    outer.Offsets(o, &so, &dso);
    for (int64_t a = a0; a < a1; a++) {
      const U* s = src + so + a;
      U* d = dst + dso + a * dj;
      for (int64_t b = b0; b < b1; b++) d[b] = s[b * sl];
    }
  }
}

template <typename U>
void CopyT(const U* src, U* dst, const CopyPlan& p) {
  if (p.numel == 0) return;
  const int last = p.ndim - 1;
  const int64_t n = p.shape[last], ss = p.src_stride[last], ds = p.dst_stride[last];
  if (ds == 1 && ss > 1) {  // a transpose: tile it if src is contiguous along another axis
    for (int j = last - 1; j >= 0; j--)
      if (p.src_stride[j] == 1 && p.shape[j] >= 4) return TransposeTiles(src, dst, p, j);
  }
  const OuterAxes outer = Outer(p, last, -1);
  if (n < kShortRows) {  // a block of rows per work item, stepping from row to row
    const int64_t rows = p.numel / n, per = std::max<int64_t>(1, kShortRows / n);
    const int64_t items = (rows + per - 1) / per;
#pragma omp parallel for schedule(static) if (p.numel > MS_OMP_MIN)
    for (int64_t it = 0; it < items; it++) {
      const int64_t r0 = it * per, r1 = std::min(rows, r0 + per);
      int64_t pos[kMaxDims], so, dso;
      outer.Offsets(r0, &so, &dso);
      outer.Indices(r0, pos);
      for (int64_t r = r0; r < r1; r++) {
        const U* s = src + so;
        U* d = dst + dso;
        if (ss == 1 && ds == 1) {
          for (int64_t i = 0; i < n; i++) d[i] = s[i];
        } else {
          for (int64_t i = 0; i < n; i++) d[i * ds] = s[i * ss];
        }
        outer.Next(pos, &so, &dso);
      }
    }
    return;
  }
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  const int64_t items = p.numel / n * chunks;
#pragma omp parallel for schedule(static) if (p.numel > MS_OMP_MIN)
  for (int64_t it = 0; it < items; it++) {
    const int64_t row = it / chunks, b = it % chunks * kChunk, e = std::min(n, b + kChunk);
    int64_t so, dso;
    outer.Offsets(row, &so, &dso);
    const U* s = src + so;
    U* d = dst + dso;
    if (ss == 1 && ds == 1) {
      std::memcpy(d + b, s + b, (e - b) * sizeof(U));
    } else if (ss == 0) {
      const U v = s[0];
      for (int64_t i = b; i < e; i++) d[i * ds] = v;
    } else {
      for (int64_t i = b; i < e; i++) d[i * ds] = s[i * ss];
    }
  }
}

// Rows shorter than this, with at least this many outer blocks, are moved element by element
// one outer block per work item (a memcpy or an accumulator block per element costs 10x).
constexpr int64_t kShortRow = 16;

// idx reduced to [0, n), -1 where out of range; *bad set if there was one.
std::vector<int64_t> TargetRows(const int32_t* idx, int64_t n, int64_t nidx, int32_t* bad) {
  std::vector<int64_t> t(nidx);
  int32_t any_bad = 0;
  for (int64_t j = 0; j < nidx; j++) {
    const int64_t v = idx[j] < 0 ? int64_t(idx[j]) + n : int64_t(idx[j]);
    t[j] = (v < 0 || v >= n) ? -1 : v;
    any_bad |= t[j] < 0;
  }
  *bad = any_bad;
  return t;
}

// kInner > 0: rows of exactly that length (a constant the compiler unrolls); 0: `inner`.
template <int64_t kInner, typename U>
void TakeShortRows(const U* x, const int64_t* t, U* y, int64_t outer, int64_t n, int64_t nidx,
                   int64_t inner_) {
  const int64_t inner = kInner > 0 ? kInner : inner_;
#pragma omp parallel for schedule(static) if (outer * nidx * inner > MS_OMP_MIN)
  for (int64_t o = 0; o < outer; o++) {
    const U* src = x + o * n * inner;
    U* out = y + o * nidx * inner;
    for (int64_t j = 0; j < nidx; j++, out += inner) {
      if (t[j] < 0) {
        for (int64_t i = 0; i < inner; i++) out[i] = U(0);
      } else {
        for (int64_t i = 0; i < inner; i++) out[i] = src[t[j] * inner + i];
      }
    }
  }
}

template <typename U>
void TakeT(const U* x, const int32_t* idx, U* y, int64_t outer, int64_t n, int64_t nidx,
           int64_t inner, int32_t* bad) {
  if (inner < kShortRow && outer >= kShortRow) {
    const std::vector<int64_t> t = TargetRows(idx, n, nidx, bad);
    if (inner == 1)
      TakeShortRows<1>(x, t.data(), y, outer, n, nidx, inner);
    else
      TakeShortRows<0>(x, t.data(), y, outer, n, nidx, inner);
    return;
  }
  int32_t any_bad = 0;
  const int64_t rows = outer * nidx;
#pragma omp parallel for schedule(static) reduction(| : any_bad) if (rows * inner > MS_OMP_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r / nidx;
    int64_t t = idx[r % nidx];
    if (t < 0) t += n;
    U* out = y + r * inner;
    if (t < 0 || t >= n) {
      any_bad = 1;
      std::memset(out, 0, inner * sizeof(U));
    } else {
      std::memcpy(out, x + (o * n + t) * inner, inner * sizeof(U));
    }
  }
  // With outer == 0 no row is visited, but the indices are still checked.
  if (rows == 0)
    for (int64_t j = 0; j < nidx; j++)
      if (idx[j] < -n || idx[j] >= n) any_bad = 1;
  *bad = any_bad;
}

// Each outer block's rows summed into a per-thread accumulator in increasing j.
template <int64_t kInner, typename T>
void TakeBackwardShortRows(const T* dy, const int64_t* t, T* dx, int64_t outer, int64_t n,
                           int64_t nidx, int64_t inner_) {
  const int64_t inner = kInner > 0 ? kInner : inner_;
  using Acc = decltype(Cvt<T>::Load(T{}));
#pragma omp parallel if (outer * nidx * inner > MS_OMP_MIN)
  {
    std::vector<Acc> acc(n * inner);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < outer; o++) {
      std::fill(acc.begin(), acc.end(), Acc(0));
      const T* g = dy + o * nidx * inner;
      for (int64_t j = 0; j < nidx; j++, g += inner) {
        if (t[j] < 0) continue;
        Acc* a = acc.data() + t[j] * inner;
        for (int64_t i = 0; i < inner; i++) a[i] += Cvt<T>::Load(g[i]);
      }
      T* out = dx + o * n * inner;
      for (int64_t k = 0; k < n * inner; k++) out[k] = Cvt<T>::Store(acc[k]);
    }
  }
}

template <typename T>
void TakeBackwardT(const T* dy, const int32_t* idx, T* dx, int64_t outer, int64_t n,
                   int64_t nidx, int64_t inner, int32_t* bad) {
  if (inner < kShortRow && outer >= kShortRow) {
    const std::vector<int64_t> t = TargetRows(idx, n, nidx, bad);
    if (inner == 1)
      TakeBackwardShortRows<1>(dy, t.data(), dx, outer, n, nidx, inner);
    else
      TakeBackwardShortRows<0>(dy, t.data(), dx, outer, n, nidx, inner);
    return;
  }
  // Bucket the positions j by target row t (a stable counting sort keeps j increasing).
  std::vector<int64_t> start(n + 1, 0), order(nidx);
  int32_t any_bad = 0;
  auto target = [&](int64_t j) -> int64_t {
    int64_t t = idx[j];
    if (t < 0) t += n;
    return (t < 0 || t >= n) ? -1 : t;
  };
  for (int64_t j = 0; j < nidx; j++) {
    const int64_t t = target(j);
    if (t < 0)
      any_bad = 1;
    else
      start[t + 1]++;
  }
  for (int64_t t = 0; t < n; t++) start[t + 1] += start[t];
  std::vector<int64_t> pos(start.begin(), start.end() - 1);
  for (int64_t j = 0; j < nidx; j++) {
    const int64_t t = target(j);
    if (t >= 0) order[pos[t]++] = j;
  }
  *bad = any_bad;

  using Acc = decltype(Cvt<T>::Load(T{}));
  constexpr int64_t kBlock = 256;
  const int64_t* ord = order.data();
  const int64_t* st = start.data();
  const int64_t rows = outer * n;
#pragma omp parallel for schedule(static) if (rows * inner > MS_OMP_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r / n, t = r % n;
    T* out = dx + r * inner;
    for (int64_t b = 0; b < inner; b += kBlock) {
      const int64_t e = std::min(inner, b + kBlock);
      Acc acc[kBlock];
      for (int64_t i = 0; i < e - b; i++) acc[i] = Acc(0);
      for (int64_t k = st[t]; k < st[t + 1]; k++) {
        const T* g = dy + (o * nidx + ord[k]) * inner + b;
        for (int64_t i = 0; i < e - b; i++) acc[i] += Cvt<T>::Load(g[i]);
      }
      for (int64_t i = 0; i < e - b; i++) out[b + i] = Cvt<T>::Store(acc[i]);
    }
  }
}

template <typename T>
void OneHotT(const int32_t* labels, int64_t n, int64_t depth, T* y, int32_t* bad) {
  int32_t any_bad = 0;
  const T zero = Cvt<T>::Store(0), one = Cvt<T>::Store(1);
#pragma omp parallel for schedule(static) reduction(| : any_bad) if (n * depth > MS_OMP_MIN)
  for (int64_t k = 0; k < n; k++) {
    T* row = y + k * depth;
    for (int64_t c = 0; c < depth; c++) row[c] = zero;
    const int64_t l = labels[k];
    if (l >= 0 && l < depth)
      row[l] = one;
    else
      any_bad = 1;
  }
  *bad = any_bad;
}

}  // namespace

void StridedCopy(Context*, size_t esize, const void* src, void* dst, const CopyPlan& plan) {
  MS_ESIZE_SWITCH(esize, U, CopyT<U>(static_cast<const U*>(src), static_cast<U*>(dst), plan));
}

void Take(Context*, size_t esize, const void* x, const int32_t* idx, void* y, int64_t outer,
          int64_t n, int64_t nidx, int64_t inner, int32_t* bad) {
  MS_ESIZE_SWITCH(esize, U,
                  TakeT<U>(static_cast<const U*>(x), idx, static_cast<U*>(y), outer, n, nidx,
                           inner, bad));
}

void TakeBackward(Context*, DType dt, const void* dy, const int32_t* idx, void* dx,
                  int64_t outer, int64_t n, int64_t nidx, int64_t inner, int32_t* bad) {
  MS_TYPE_SWITCH(dt, T,
                 TakeBackwardT<T>(static_cast<const T*>(dy), idx, static_cast<T*>(dx), outer, n,
                                  nidx, inner, bad));
}

void OneHot(Context*, DType dt, const int32_t* labels, int64_t n, int64_t depth, void* y,
            int32_t* bad) {
  MS_TYPE_SWITCH(dt, T, OneHotT<T>(labels, n, depth, static_cast<T*>(y), bad));
}

void IndexRange(Context*, const int32_t* idx, int64_t count, int64_t lo, int64_t hi,
                int32_t* bad) {
  int32_t any_bad = 0;
#pragma omp parallel for schedule(static) reduction(| : any_bad) if (count > MS_OMP_MIN)
  for (int64_t j = 0; j < count; j++) any_bad |= idx[j] < lo || idx[j] >= hi;
  *bad = any_bad;
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
