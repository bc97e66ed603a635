// CPU pooling kernels: one OpenMP work item per plane. Each output row is built from the
// window's input rows, one kernel cell at a time, as strided loops over the output columns
// whose window cell lies inside the image (so they vectorise and never branch on data).
// float16: each input plane is widened into a float32 buffer once (cheaper than converting
// the cells of overlapping windows again and again), and each output row or plane is built
// in a float32 buffer and rounded once when complete.
#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/dispatch.h"
#include "kernels/pool.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// Number of window cells of output (o) inside [0, n) along one axis.
inline int64_t Inside(int64_t o, int64_t S, int64_t P, int64_t K, int64_t n) {
  const int64_t a = o * S - P;
  return std::max<int64_t>(0, std::min(a + K, n) - std::max<int64_t>(a, 0));
}

// 1 / divisor for every output cell of a plane (0 where the window has no cell inside).
std::vector<float> InverseCounts(const ConvGeom& g, bool count_include_pad) {
  std::vector<float> inv(g.OH * g.OW);
  for (int64_t oh = 0; oh < g.OH; oh++) {
    const int64_t ch = Inside(oh, g.SH, g.PT, g.KH, g.H);
    for (int64_t ow = 0; ow < g.OW; ow++) {
      const int64_t n = ch * Inside(ow, g.SW, g.PL, g.KW, g.W);
      const int64_t d = count_include_pad ? g.KH * g.KW : n;
      inv[oh * g.OW + ow] = n > 0 ? 1.f / static_cast<float>(d) : 0.f;
    }
  }
  return inv;
}

// Calls f(ih, off, lo, hi) for every window cell (kh, kw) of output row oh that lies in
// the image: input row ih, input column ow*SW + off for output columns [lo, hi).
template <typename F>
inline void ForCells(const ConvGeom& g, const ColRange* cols, int64_t oh, F f) {
  for (int64_t kh = 0; kh < g.KH; kh++) {
    const int64_t ih = oh * g.SH - g.PT + kh;
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t kw = 0; kw < g.KW; kw++) f(ih, cols[kw].off, cols[kw].lo, cols[kw].hi);
  }
}

// src as n float32 values: src itself for float32, else buf (resized to n) holding them.
template <typename T>
const float* Widen(const T* src, int64_t n, std::vector<float>& buf) {
  if constexpr (std::is_same<T, float>::value) {
    return src;
  } else {
    buf.resize(n);
    for (int64_t i = 0; i < n; i++) buf[i] = Cvt<T>::Load(src[i]);
    return buf.data();
  }
}

// Where n float32 results bound for out are computed: out itself for float32, else buf
// (resized to n), which StoreAcc then rounds into out.
template <typename T>
float* Acc(T* out, std::vector<float>& buf, int64_t n) {
  if constexpr (std::is_same<T, float>::value) {
    return out;
  } else {
    buf.resize(n);
    return buf.data();
  }
}
template <typename T>
void StoreAcc(const float* acc, int64_t n, T* out) {
  if constexpr (!std::is_same<T, float>::value)
    for (int64_t i = 0; i < n; i++) out[i] = Cvt<T>::Store(acc[i]);
}

// Whether g is a 2x2 window with stride 2 whose every window lies inside the image (no top
// or left padding, and no window reaching into bottom or right padding): MaxPoolRow2x2's
// case, the classic CNNs' pooling.
inline bool Is2x2Stride2(const ConvGeom& g) {
  return g.KH == 2 && g.KW == 2 && g.SH == 2 && g.SW == 2 && g.PT == 0 && g.PL == 0 &&
         g.DH == 1 && g.DW == 1 && 2 * g.OH <= g.H && 2 * g.OW <= g.W;
}

// Output row oh of a 2x2 stride-2 max pool: each output's four cells in window order, with the
// general path's rule (the first maximum wins, and the first NaN over numbers).
inline void MaxPoolRow2x2(const float* xp, const ConvGeom& g, int64_t oh, float* best,
                          int32_t* arg) {
  const float* r0 = xp + 2 * oh * g.W;
  const float* r1 = r0 + g.W;
  const int32_t base = static_cast<int32_t>(2 * oh * g.W), W = static_cast<int32_t>(g.W);
  for (int64_t ow = 0; ow < g.OW; ow++) {
    const float v[4] = {r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1]};
    const int32_t at[4] = {0, 1, W, W + 1};
    float b = v[0];
    int32_t a = at[0];
    for (int c = 1; c < 4; c++) {
      const bool take = v[c] > b || (v[c] != v[c] && b == b);
      b = take ? v[c] : b;
      a = take ? at[c] : a;
    }
    best[ow] = b;
    arg[ow] = base + static_cast<int32_t>(2 * ow) + a;
  }
}

template <typename T>
void MaxPoolT(const T* x, int64_t planes, const ConvGeom& g, T* y, int32_t* idx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW, SW = g.SW;
  const float lowest = -std::numeric_limits<float>::infinity();
  const std::vector<ColRange> cols = ColRanges(g);
  const bool fast = Is2x2Stride2(g);
#pragma omp parallel if (planes * P * g.KH * g.KW > MS_OMP_MIN)
  {
    std::vector<float> xbuf, ybuf;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
      const float* xp = Widen(x + pl * HW, HW, xbuf);
      for (int64_t oh = 0; oh < g.OH; oh++) {
        T* yrow = y + pl * P + oh * g.OW;
        float* best = Acc(yrow, ybuf, g.OW);
        int32_t* arg = idx + pl * P + oh * g.OW;
        if (fast) {
          MaxPoolRow2x2(xp, g, oh, best, arg);
          StoreAcc(best, g.OW, yrow);
          continue;
        }
        for (int64_t ow = 0; ow < g.OW; ow++) {
          best[ow] = lowest;
          arg[ow] = -1;
        }
        // Cells in window order: the first maximum wins, and the first NaN over numbers.
        ForCells(g, cols.data(), oh, [&](int64_t ih, int64_t off, int64_t lo, int64_t hi) {
          const float* src = xp + ih * g.W + off;
          const int32_t base = static_cast<int32_t>(ih * g.W + off);
          for (int64_t ow = lo; ow < hi; ow++) {
            const float v = src[ow * SW], b = best[ow];
            const bool take = arg[ow] < 0 || v > b || (v != v && b == b);
            best[ow] = take ? v : b;
            arg[ow] = take ? base + static_cast<int32_t>(ow * SW) : arg[ow];
          }
        });
        for (int64_t ow = 0; ow < g.OW; ow++)  // windows entirely in the padding
          if (arg[ow] < 0) best[ow] = 0.f;
        StoreAcc(best, g.OW, yrow);
      }
    }
  }
}

template <typename T>
void AvgPoolT(const T* x, int64_t planes, const ConvGeom& g, bool count_include_pad, T* y) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW, SW = g.SW;
  const std::vector<float> inv = InverseCounts(g, count_include_pad);
  const std::vector<ColRange> cols = ColRanges(g);
#pragma omp parallel if (planes * P * g.KH * g.KW > MS_OMP_MIN)
  {
    std::vector<float> xbuf, ybuf;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
      const float* xp = Widen(x + pl * HW, HW, xbuf);
      for (int64_t oh = 0; oh < g.OH; oh++) {
        T* yrow = y + pl * P + oh * g.OW;
        float* sum = Acc(yrow, ybuf, g.OW);
        const float* scale = inv.data() + oh * g.OW;
        for (int64_t ow = 0; ow < g.OW; ow++) sum[ow] = 0.f;
        ForCells(g, cols.data(), oh, [&](int64_t ih, int64_t off, int64_t lo, int64_t hi) {
          const float* src = xp + ih * g.W + off;
          for (int64_t ow = lo; ow < hi; ow++) sum[ow] += src[ow * SW];
        });
        for (int64_t ow = 0; ow < g.OW; ow++) sum[ow] *= scale[ow];
        StoreAcc(sum, g.OW, yrow);
      }
    }
  }
}

template <typename T>
void MaxPoolBackwardT(const T* dy, const int32_t* idx, int64_t planes, const ConvGeom& g,
                      T* dx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
#pragma omp parallel if (planes * (P + HW) > MS_OMP_MIN)
  {
    std::vector<float> buf;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
      float* dp = Acc(dx + pl * HW, buf, HW);
      const T* gp = dy + pl * P;
      const int32_t* ip = idx + pl * P;
      std::memset(dp, 0, sizeof(float) * HW);
      for (int64_t i = 0; i < P; i++)
        if (ip[i] >= 0 && ip[i] < HW) dp[ip[i]] += Cvt<T>::Load(gp[i]);
      StoreAcc(dp, HW, dx + pl * HW);
    }
  }
}

template <typename T>
void AvgPoolBackwardT(const T* dy, int64_t planes, const ConvGeom& g, bool count_include_pad,
                      T* dx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW, SW = g.SW;
  const std::vector<float> inv = InverseCounts(g, count_include_pad);
  const std::vector<ColRange> cols = ColRanges(g);
#pragma omp parallel if (planes * P * g.KH * g.KW > MS_OMP_MIN)
  {
    std::vector<float> gbuf, dbuf;
#pragma omp for schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
      float* dp = Acc(dx + pl * HW, dbuf, HW);
      const float* gp = Widen(dy + pl * P, P, gbuf);
      std::memset(dp, 0, sizeof(float) * HW);
      for (int64_t oh = 0; oh < g.OH; oh++) {
        const float* grow = gp + oh * g.OW;
        const float* scale = inv.data() + oh * g.OW;
        ForCells(g, cols.data(), oh, [&](int64_t ih, int64_t off, int64_t lo, int64_t hi) {
          float* dst = dp + ih * g.W + off;
          for (int64_t ow = lo; ow < hi; ow++) dst[ow * SW] += grow[ow] * scale[ow];
        });
      }
      StoreAcc(dp, HW, dx + pl * HW);
    }
  }
}

}  // namespace

void MaxPool2d(Context*, const float* x, int64_t planes, const ConvGeom& g, float* y,
               int32_t* idx) {
  MaxPoolT(x, planes, g, y, idx);
}
void MaxPool2d(Context*, const half_t* x, int64_t planes, const ConvGeom& g, half_t* y,
               int32_t* idx) {
  MaxPoolT(x, planes, g, y, idx);
}

void AvgPool2d(Context*, const float* x, int64_t planes, const ConvGeom& g,
               bool count_include_pad, float* y) {
  AvgPoolT(x, planes, g, count_include_pad, y);
}
void AvgPool2d(Context*, const half_t* x, int64_t planes, const ConvGeom& g,
               bool count_include_pad, half_t* y) {
  AvgPoolT(x, planes, g, count_include_pad, y);
}

void MaxPool2dBackward(Context*, const float* dy, const int32_t* idx, int64_t planes,
                       const ConvGeom& g, float* dx) {
  MaxPoolBackwardT(dy, idx, planes, g, dx);
}
void MaxPool2dBackward(Context*, const half_t* dy, const int32_t* idx, int64_t planes,
                       const ConvGeom& g, half_t* dx) {
  MaxPoolBackwardT(dy, idx, planes, g, dx);
}

void AvgPool2dBackward(Context*, const float* dy, int64_t planes, const ConvGeom& g,
                       bool count_include_pad, float* dx) {
  AvgPoolBackwardT(dy, planes, g, count_include_pad, dx);
}
void AvgPool2dBackward(Context*, const half_t* dy, int64_t planes, const ConvGeom& g,
                       bool count_include_pad, half_t* dx) {
  AvgPoolBackwardT(dy, planes, g, count_include_pad, dx);
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
