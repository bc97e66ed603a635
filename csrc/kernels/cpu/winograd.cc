// CPU Winograd F(m x m, 3x3) transforms (kernels/winograd.h, where the per-tile work is):
// parallel over channels and images.
#include <omp.h>

#include <algorithm>
#include <cstdint>

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

}  // namespace

// Filters and their adjoints go in blocks of kBlock columns: each plane of U (or P) is then
// read or written in runs of kBlock floats, not a float per plane per filter.
constexpr int64_t kBlock = 64;

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
    const int64_t plane = g.C * tl.Ts;
#pragma omp parallel for collapse(2) schedule(static) if (g.C * tl.T * P > MS_OMP_MIN)
    for (int64_t c = 0; c < g.C; c++)
      for (int64_t b = 0; b < batch; b++) {
        const float* img = x + (b * g.C + c) * g.H * g.W;
        for (int64_t th = 0; th < tl.th_n; th++)
          for (int64_t tw = 0; tw < tl.tw_n; tw++) {
            float d[P], v[P];
            winograd::LoadInputTile<M>(img, g, th, tw, d);
            winograd::Tile<M>::Input(d, v);
            float* out = V + tl.At(b * tl.per + th * tl.tw_n + tw, c, g.C, P);
            for (int xi = 0; xi < P; xi++) out[xi * plane] = v[xi];
          }
      }
  });
}

void WinogradOutput(Context*, int m, const float* M, const float* bias, int64_t batch,
                    const ConvGeom& g, int64_t K, float* y) {
  WithTile(m, [&](auto tile) {
    constexpr int TM = decltype(tile)::value, P = Planes(TM);
    const Tiles tl(g, TM, batch, 1);
    const int64_t KT = K * tl.T;
#pragma omp parallel for collapse(2) schedule(static) if (KT * P > MS_OMP_MIN)
    for (int64_t k = 0; k < K; k++)
      for (int64_t b = 0; b < batch; b++) {
        float* out = y + (b * K + k) * g.OH * g.OW;
        for (int64_t th = 0; th < tl.th_n; th++)
          for (int64_t tw = 0; tw < tl.tw_n; tw++) {
            const float* in = M + k * tl.T + b * tl.per + th * tl.tw_n + tw;
            float mt[P], o[TM * TM];
            for (int xi = 0; xi < P; xi++) mt[xi] = in[xi * KT];
            winograd::Tile<TM>::Output(mt, o);
            winograd::StoreOutputTile<TM>(o, bias ? bias + k : nullptr, g, th, tw, out);
          }
      }
  });
}

void WinogradOutputAdjoint(Context*, int m, const float* dy, int64_t batch, const ConvGeom& g,
                           int64_t K, int64_t slices, float* Z) {
  WithTile(m, [&](auto tile) {
    constexpr int M = decltype(tile)::value, P = Planes(M);
    const Tiles tl(g, M, batch, slices);
    const int64_t plane = K * tl.Ts;
#pragma omp parallel for collapse(2) schedule(static) if (K * tl.T * P > MS_OMP_MIN)
    for (int64_t k = 0; k < K; k++)
      for (int64_t b = 0; b < batch; b++) {
        const float* img = dy + (b * K + k) * g.OH * g.OW;
        for (int64_t th = 0; th < tl.th_n; th++)
          for (int64_t tw = 0; tw < tl.tw_n; tw++) {
            float d[M * M], z[P];
            winograd::LoadOutputTile<M>(img, g, th, tw, d);
            winograd::Tile<M>::OutputAdjoint(d, z);
            float* out = Z + tl.At(b * tl.per + th * tl.tw_n + tw, k, K, P);
            for (int xi = 0; xi < P; xi++) out[xi * plane] = z[xi];
          }
      }
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
