// CPU Winograd F(2x2, 3x3) transforms (kernels/winograd.h, where the per-tile work is):
// parallel over channels and images.
#include <omp.h>

#include <cstdint>

#include "core/dispatch.h"
#include "kernels/winograd.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// The tiles of `batch` images of g's output, cut into `slices` slices.
struct Tiles {
  int64_t th_n, tw_n, per, T, Ts;
  Tiles(const ConvGeom& g, int64_t batch, int64_t slices)
      : th_n((g.OH + 1) / 2), tw_n((g.OW + 1) / 2), per(th_n * tw_n), T(batch * per),
        Ts(T / slices) {}
  // Offset of tile t of channel c in a [slices][16][channels][Ts] array, at xi 0 (the next
  // xi's is channels * Ts further on).
  int64_t At(int64_t t, int64_t c, int64_t channels) const {
    return ((t / Ts) * 16 * channels + c) * Ts + t % Ts;
  }
};

}  // namespace

void WinogradFilter(Context*, const float* w, int64_t K, int64_t C, bool flip, float* U) {
#pragma omp parallel for schedule(static) if (K * C * 16 > MS_OMP_MIN)
  for (int64_t kc = 0; kc < K * C; kc++) winograd::FilterItem(w, K, C, flip, kc, U);
}

void WinogradInput(Context*, const float* x, int64_t batch, const ConvGeom& g, int64_t slices,
                   float* V) {
  const Tiles tl(g, batch, slices);
  const int64_t plane = g.C * tl.Ts;
#pragma omp parallel for collapse(2) schedule(static) if (g.C * tl.T * 16 > MS_OMP_MIN)
  for (int64_t c = 0; c < g.C; c++)
    for (int64_t b = 0; b < batch; b++) {
      const float* img = x + (b * g.C + c) * g.H * g.W;
      for (int64_t th = 0; th < tl.th_n; th++)
        for (int64_t tw = 0; tw < tl.tw_n; tw++) {
          float d[16], v[16];
          winograd::LoadInputTile(img, g, th, tw, d);
          winograd::InputTile(d, v);
          float* out = V + tl.At(b * tl.per + th * tl.tw_n + tw, c, g.C);
          for (int xi = 0; xi < 16; xi++) out[xi * plane] = v[xi];
        }
    }
}

void WinogradOutput(Context*, const float* M, const float* bias, int64_t batch,
                    const ConvGeom& g, int64_t K, float* y) {
  const Tiles tl(g, batch, 1);
  const int64_t KT = K * tl.T;
#pragma omp parallel for collapse(2) schedule(static) if (KT * 16 > MS_OMP_MIN)
  for (int64_t k = 0; k < K; k++)
    for (int64_t b = 0; b < batch; b++) {
      float* out = y + (b * K + k) * g.OH * g.OW;
      for (int64_t th = 0; th < tl.th_n; th++)
        for (int64_t tw = 0; tw < tl.tw_n; tw++) {
          const float* in = M + k * tl.T + b * tl.per + th * tl.tw_n + tw;
          float m[16], o[4];
          for (int xi = 0; xi < 16; xi++) m[xi] = in[xi * KT];
          winograd::OutputTile(m, o);
          winograd::StoreOutputTile(o, bias ? bias + k : nullptr, g, th, tw, out);
        }
    }
}

void WinogradOutputAdjoint(Context*, const float* dy, int64_t batch, const ConvGeom& g,
                           int64_t K, int64_t slices, float* Z) {
  const Tiles tl(g, batch, slices);
  const int64_t plane = K * tl.Ts;
#pragma omp parallel for collapse(2) schedule(static) if (K * tl.T * 16 > MS_OMP_MIN)
  for (int64_t k = 0; k < K; k++)
    for (int64_t b = 0; b < batch; b++) {
      const float* img = dy + (b * K + k) * g.OH * g.OW;
      for (int64_t th = 0; th < tl.th_n; th++)
        for (int64_t tw = 0; tw < tl.tw_n; tw++) {
          float d[4], z[16];
          winograd::LoadOutputTile(img, g, th, tw, d);
          winograd::OutputAdjointTile(d, z);
          float* out = Z + tl.At(b * tl.per + th * tl.tw_n + tw, k, K);
          for (int xi = 0; xi < 16; xi++) out[xi * plane] = z[xi];
        }
    }
}

void WinogradFilterAdjoint(Context*, const float* P, int64_t parts, int64_t K, int64_t C,
                           float* dw) {
#pragma omp parallel for schedule(static) if (K * C * 16 * parts > MS_OMP_MIN)
  for (int64_t kc = 0; kc < K * C; kc++) winograd::FilterAdjointItem(P, parts, K * C, kc, dw);
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
