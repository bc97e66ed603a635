// CPU Winograd F(m x m, 3x3) transforms (kernels/winograd.h, where the per-tile work is):
// parallel over channels and runs of kLanes consecutive tiles (across tile rows and images, so
// that the planes of V, M and Z are read and written in whole vectors).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "core/dispatch.h"
#include "kernels/winograd.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

using winograd::Planes;
using winograd::WithTile;

// The tiles of `batch` images of g's output, cut into `slices` slices.
struct Tiles {
  int64_t th_n, tw_n, per, T, Ts;
  Tiles(const ConvGeom& g, int m, int64_t batch, int64_t slices)
      : th_n(winograd::Tiles(g.OH, m)), tw_n(winograd::Tiles(g.OW, m)), per(th_n * tw_n),
        T(batch * per), Ts(T / slices) {}
  // Offset of tile t of channel c in a [slices][planes][channels][Ts] array, at xi 0 (the
  // next xi's is channels * Ts further on).
  int64_t At(int64_t t, int64_t c, int64_t channels, int planes) const {
    return ((t / Ts) * planes * channels + c) * Ts + t % Ts;
  }
};

// Filters and their adjoints go in blocks of kBlock columns: each plane of U (or P) is then
// read or written in runs of kBlock floats, not a float per plane per filter.
constexpr int64_t kBlock = 64;

// The tile transforms run on kLanes consecutive tiles at once, a tile per lane of a GCC vector
// (the arithmetic vectorises; each plane of V, M or Z is then read or written in whole vectors
// but at the end of a slice or of all tiles).
constexpr int kLanes = 8;
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

// Lanes of tiles t0 .. t0 + n - 1 of one channel c of a [batch][channels][hw] tensor: lane l's
// offset of its plane, tile row and tile column.
struct LaneTiles {
  int64_t off[kLanes], th[kLanes], tw[kLanes];
  LaneTiles(const Tiles& tl, int64_t channels, int64_t c, int64_t hw, int64_t t0, int n) {
    for (int l = 0; l < n; l++) {
      const int64_t t = t0 + l, r = t % tl.per;
      off[l] = (t / tl.per * channels + c) * hw;
      th[l] = r / tl.tw_n;
      tw[l] = r % tl.tw_n;
    }
  }
};

// d[k][l] = entry k of the window winograd::LoadWindow<M, A> gives for lane l < n of x (the
// rest zero).
template <int M, int A>
void LoadLanes(const float* x, const LaneTiles& lt, int64_t h, int64_t w, int64_t pt,
               int64_t pl, int n, Lanes* d) {
  for (int k = 0; k < A * A; k++) d[k] = Lanes{};
  for (int l = 0; l < n; l++) {
    float t[A * A];
    winograd::LoadWindow<M, A>(x + lt.off[l], h, w, pt, pl, lt.th[l], lt.tw[l], t);
    for (int k = 0; k < A * A; k++) d[k][l] = t[k];
  }
}

// Copies n <= kLanes floats (a constant-size copy, inlined, for whole vectors).
inline void CopyLanes(void* dst, const void* src, int n) {
  if (n == kLanes)
    std::memcpy(dst, src, sizeof(Lanes));
  else
    std::memcpy(dst, src, n * sizeof(float));
}

// Writes the P planes of n lanes, the tiles t0 .. t0 + n - 1 of channel c, into a
// [slices][P][channels][Ts] array.
template <int P>
void StoreLanes(const Lanes* v, const Tiles& tl, int64_t t0, int n, int64_t c, int64_t channels,
                float* out) {
  const int64_t plane = channels * tl.Ts;
  if (t0 % tl.Ts + n <= tl.Ts) {  // one slice: runs of n floats
    float* o = out + tl.At(t0, c, channels, P);
    for (int xi = 0; xi < P; xi++) CopyLanes(o + xi * plane, &v[xi], n);
    return;
  }
  for (int l = 0; l < n; l++) {
    float* o = out + tl.At(t0 + l, c, channels, P);
    for (int xi = 0; xi < P; xi++) o[xi * plane] = v[xi][l];
  }
}

// f(c, t0, n) for every channel c < channels and run of n <= kLanes tiles from t0 < T, in
// parallel when `work` is large.
template <typename F>
void ForLanes(int64_t channels, int64_t T, int64_t work, F f) {
  const int64_t runs = (T + kLanes - 1) / kLanes;
#pragma omp parallel for collapse(2) schedule(static) if (work > MS_OMP_MIN)
  for (int64_t c = 0; c < channels; c++)
    for (int64_t r = 0; r < runs; r++) {
      const int64_t t0 = r * kLanes;
      f(c, t0, static_cast<int>(std::min<int64_t>(kLanes, T - t0)));
    }
}

}  // namespace

void WinogradFilter(Context*, int m, const float* w, int64_t K, int64_t C, bool flip,
                    float* U) {
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value, P = Planes(M);
    const int64_t KC = K * C;
#pragma omp parallel for schedule(static) if (KC * P > MS_OMP_MIN)
    for (int64_t j0 = 0; j0 < KC; j0 += kBlock) {
      const int64_t n = std::min(kBlock, KC - j0);
      float u[kBlock][P];
      for (int64_t j = 0; j < n; j++) winograd::FilterColumn<M>(w, K, C, flip, j0 + j, u[j]);
      for (int xi = 0; xi < P; xi++)
        for (int64_t j = 0; j < n; j++) U[xi * KC + j0 + j] = u[j][xi];
    }
  });
}

void WinogradInput(Context*, int m, const float* x, int64_t batch, const ConvGeom& g,
                   int64_t slices, float* V) {
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value, P = Planes(M);
    const Tiles tl(g, M, batch, slices);
    ForLanes(g.C, tl.T, g.C * tl.T * P, [&](int64_t c, int64_t t0, int n) {
      Lanes d[P], v[P];
      LoadLanes<M, M + 2>(x, LaneTiles(tl, g.C, c, g.H * g.W, t0, n), g.H, g.W, g.PT, g.PL, n,
                          d);
      winograd::Tile<M>::Input(d, v);
      StoreLanes<P>(v, tl, t0, n, c, g.C, V);
    });
  });
}

void WinogradOutput(Context*, int m, const float* M, const float* bias, int64_t batch,
                    const ConvGeom& g, int64_t K, float* y) {
  WithTile(m, [&](auto tile) {
    constexpr int TM = decltype(tile)::value, P = Planes(TM);
    const Tiles tl(g, TM, batch, 1);
    const int64_t KT = K * tl.T;
    ForLanes(K, tl.T, KT * P, [&](int64_t k, int64_t t0, int n) {
      Lanes mt[P], o[TM * TM];
      for (int xi = 0; xi < P; xi++) {
        mt[xi] = Lanes{};
        CopyLanes(&mt[xi], M + xi * KT + k * tl.T + t0, n);
      }
      winograd::Tile<TM>::Output(mt, o);
      const LaneTiles lt(tl, K, k, g.OH * g.OW, t0, n);
      for (int l = 0; l < n; l++) {
        float ol[TM * TM];
        for (int i = 0; i < TM * TM; i++) ol[i] = o[i][l];
        winograd::StoreOutputTile<TM>(ol, bias ? bias + k : bias, g, lt.th[l], lt.tw[l],
                                      y + lt.off[l]);
      }
    });
  });
}

void WinogradOutputAdjoint(Context*, int m, const float* dy, int64_t batch, const ConvGeom& g,
                           int64_t K, int64_t slices, float* Z) {
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value, P = Planes(M);
    const Tiles tl(g, M, batch, slices);
    ForLanes(K, tl.T, K * tl.T * P, [&](int64_t k, int64_t t0, int n) {
      Lanes d[M * M], z[P];
      LoadLanes<M, M>(dy, LaneTiles(tl, K, k, g.OH * g.OW, t0, n), g.OH, g.OW, 0, 0, n, d);
      winograd::Tile<M>::OutputAdjoint(d, z);
      StoreLanes<P>(z, tl, t0, n, k, K, Z);
    });
  });
}

void WinogradFilterAdjoint(Context*, int m, const float* P, int64_t parts, int64_t K, int64_t C,
                           float* dw) {
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value, NP = Planes(M);
    const int64_t KC = K * C;
#pragma omp parallel for schedule(static) if (KC * NP * parts > MS_OMP_MIN)
    for (int64_t j0 = 0; j0 < KC; j0 += kBlock) {
      const int64_t n = std::min(kBlock, KC - j0);
      float u[kBlock][NP] = {};
      for (int64_t p = 0; p < parts; p++)  // in order of p, as on a GPU
        for (int xi = 0; xi < NP; xi++) {
          const float* src = P + (p * NP + xi) * KC + j0;
          for (int64_t j = 0; j < n; j++) u[j][xi] += src[j];
        }
      for (int64_t j = 0; j < n; j++) winograd::FilterAdjointColumn<M>(u[j], j0 + j, dw);
    }
  });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
