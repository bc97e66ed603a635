// CPU Winograd F(2x2, 3x3) transforms (kernels/winograd.h): a tile per iteration, the
// arithmetic in winograd.h; parallel over channels and images.
#include <omp.h>

#include <cstdint>

#include "core/dispatch.h"
#include "kernels/winograd.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// The tiles of `batch` images of g's output in `slices` slices: f(b, th, tw, at) for each,
// with `at` the tile's offset in a [slices][16][channels][T/slices] array at channel 0 and
// xi 0; channels * tile plane entries apart are the next xi's.
struct Tiles {
  int64_t th_n, tw_n, per, T, Ts;
  Tiles(const ConvGeom& g, int64_t batch, int64_t slices)
      : th_n((g.OH + 1) / 2), tw_n((g.OW + 1) / 2), per(th_n * tw_n), T(batch * per),
        Ts(T / slices) {}
  // Offset of tile t of channel c (of `channels`), xi 0; a plane of xi is channels * Ts long.
  int64_t At(int64_t t, int64_t c, int64_t channels) const {
    return ((t / Ts) * 16 * channels + c) * Ts + t % Ts;
  }
};

}  // namespace

void WinogradFilter(Context*, const float* w, int64_t K, int64_t C, bool flip, float* U) {
  const int64_t KC = K * C;
#pragma omp parallel for schedule(static) if (KC * 16 > MS_OMP_MIN)
  for (int64_t kc = 0; kc < KC; kc++) {
    const float* f = w + kc * 9;
    float g[9], u[16];
    for (int i = 0; i < 9; i++) g[i] = f[flip ? 8 - i : i];
    winograd::FilterTile(g, u);
    const int64_t k = kc / C, c = kc % C, at = flip ? c * K + k : kc;
    for (int xi = 0; xi < 16; xi++) U[xi * KC + at] = u[xi];
  }
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
          for (int i = 0; i < 4; i++) {
            const int64_t ih = 2 * th - g.PT + i;
            for (int j = 0; j < 4; j++) {
              const int64_t iw = 2 * tw - g.PL + j;
              d[4 * i + j] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? img[ih * g.W + iw] : 0.f;
            }
          }
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
          const int64_t t = b * tl.per + th * tl.tw_n + tw;
          float m[16], o[4];
          for (int xi = 0; xi < 16; xi++) m[xi] = M[xi * KT + k * tl.T + t];
          winograd::OutputTile(m, o);
          for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
              const int64_t oh = 2 * th + i, ow = 2 * tw + j;
              if (oh < g.OH && ow < g.OW)
                out[oh * g.OW + ow] = bias ? o[2 * i + j] + bias[k] : o[2 * i + j];
            }
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
          for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
              const int64_t oh = 2 * th + i, ow = 2 * tw + j;
              d[2 * i + j] = oh < g.OH && ow < g.OW ? img[oh * g.OW + ow] : 0.f;
            }
          winograd::OutputAdjointTile(d, z);
          float* out = Z + tl.At(b * tl.per + th * tl.tw_n + tw, k, K);
          for (int xi = 0; xi < 16; xi++) out[xi * plane] = z[xi];
        }
    }
}

void WinogradFilterAdjoint(Context*, const float* P, int64_t parts, int64_t K, int64_t C,
                           float* dw) {
  const int64_t KC = K * C;
#pragma omp parallel for schedule(static) if (KC * 16 * parts > MS_OMP_MIN)
  for (int64_t kc = 0; kc < KC; kc++) {
    float u[16], d[9];
    for (int xi = 0; xi < 16; xi++) {
      float acc = 0.f;
      for (int64_t p = 0; p < parts; p++) acc += P[(p * 16 + xi) * KC + kc];
      u[xi] = acc;
    }
    winograd::FilterAdjointTile(u, d);
    for (int i = 0; i < 9; i++) dw[kc * 9 + i] = d[i];
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
