// Winograd F(2x2, 3x3) transforms (Lavin and Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2016) for 3x3, stride-1 convolutions: each 4x4 input tile gives a 2x2 output
// tile from 16 products per (input, output) channel pair instead of 36. ops/conv.cc runs a
// convolution as
//   U[xi] = G g G^T  per filter (WinogradFilter),  V[xi] = B^T d B  per input tile
//   (WinogradInput),  M[xi] = U[xi] V[xi]  one GEMM per tile position xi (16, batched),
//   y = A^T m A  per output tile, plus bias (WinogradOutput),
// with xi = 4 * i + j for entry (i, j) of a 4x4 tile. The tile arithmetic is written once
// below (host and device); every coefficient is 0, +-1 or 1/2, so the transforms round only
// where they add. The transforms cancel terms exactly only for finite values: an Inf in x
// gives NaN to its whole 2x2 output tile (im2col would give Inf, and finite values to the
// outputs whose windows miss it), as cuDNN's Winograd does.
//
// Layouts (T tiles: t = (b * tiles_h + th) * tiles_w + tw, tiles_h = ceil(OH / 2),
// tiles_w = ceil(OW / 2)): U [16][K][C], V [S][16][C][T/S], M [16][K][T], where the tiles
// are cut into S slices of T/S (t = s * T/S + t'; S divides the tiles of one image, so any
// number of images): the weight gradient sums over tiles by one GEMM per (slice, xi), which
// keeps a GPU busy where K x C is small (S = 1 elsewhere). A tile (th, tw) reads
// input rows 2*th - PT .. +3 and columns 2*tw - PL .. +3 (zero outside the image) and writes
// output rows 2*th, 2*th + 1 and columns 2*tw, 2*tw + 1 that exist.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
#include "kernels/conv.h"  // ConvGeom

namespace minisinga {
namespace winograd {

// v = B^T d B; B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
MS_HD void InputTile(const float d[16], float v[16]) {
  float t[16];
  for (int j = 0; j < 4; j++) {  // t = B^T d, column by column
    t[0 + j] = d[0 + j] - d[8 + j];
    t[4 + j] = d[4 + j] + d[8 + j];
    t[8 + j] = d[8 + j] - d[4 + j];
    t[12 + j] = d[4 + j] - d[12 + j];
  }
  for (int i = 0; i < 4; i++) {  // v = t B, row by row
    const float* r = t + 4 * i;
    v[4 * i + 0] = r[0] - r[2];
    v[4 * i + 1] = r[1] + r[2];
    v[4 * i + 2] = r[2] - r[1];
    v[4 * i + 3] = r[1] - r[3];
  }
}

// u = G g G^T for a 3x3 filter g (row-major); G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
MS_HD void FilterTile(const float g[9], float u[16]) {
  float t[12];  // t = G g (4 x 3)
  for (int j = 0; j < 3; j++) {
    t[0 + j] = g[0 + j];
    t[3 + j] = 0.5f * (g[0 + j] + g[3 + j] + g[6 + j]);
    t[6 + j] = 0.5f * (g[0 + j] - g[3 + j] + g[6 + j]);
    t[9 + j] = g[6 + j];
  }
  for (int i = 0; i < 4; i++) {  // u = t G^T
    const float* r = t + 3 * i;
    u[4 * i + 0] = r[0];
    u[4 * i + 1] = 0.5f * (r[0] + r[1] + r[2]);
    u[4 * i + 2] = 0.5f * (r[0] - r[1] + r[2]);
    u[4 * i + 3] = r[2];
  }
}

// The weight gradient is the adjoint of the forward pass: with Z[xi][k][t] = A dy A^T for the
// 2x2 tile of dy (OutputAdjointTile), dU[xi][k][c] = sum over t of Z[xi][k][t] V[xi][c][t]
// (GEMMs over the tiles), and dw[k][c] = G^T dU[k][c] G (FilterAdjointTile).

// y = A^T m A (2x2, row-major); A^T = [1 1 1 0; 0 1 -1 -1].
MS_HD void OutputTile(const float m[16], float y[4]) {
  float t[8];  // t = A^T m (2 x 4)
  for (int j = 0; j < 4; j++) {
    t[0 + j] = m[0 + j] + m[4 + j] + m[8 + j];
    t[4 + j] = m[4 + j] - m[8 + j] - m[12 + j];
  }
  for (int i = 0; i < 2; i++) {
    const float* r = t + 4 * i;
    y[2 * i + 0] = r[0] + r[1] + r[2];
    y[2 * i + 1] = r[1] - r[2] - r[3];
  }
}

// z = A d A^T for a 2x2 tile d (row-major): the adjoint of OutputTile.
MS_HD void OutputAdjointTile(const float d[4], float z[16]) {
  float t[8];  // t = A d (4 x 2)
  for (int j = 0; j < 2; j++) {
    t[0 + j] = d[0 + j];
    t[2 + j] = d[0 + j] + d[2 + j];
    t[4 + j] = d[0 + j] - d[2 + j];
    t[6 + j] = -d[2 + j];
  }
  for (int i = 0; i < 4; i++) {  // z = t A^T
    const float* r = t + 2 * i;
    z[4 * i + 0] = r[0];
    z[4 * i + 1] = r[0] + r[1];
    z[4 * i + 2] = r[0] - r[1];
    z[4 * i + 3] = -r[1];
  }
}

// dg = G^T u G (3x3) for a 4x4 u: the adjoint of FilterTile.
MS_HD void FilterAdjointTile(const float u[16], float dg[9]) {
  float t[12];  // t = G^T u (3 x 4)
  for (int j = 0; j < 4; j++) {
    t[0 + j] = u[0 + j] + 0.5f * (u[4 + j] + u[8 + j]);
    t[4 + j] = 0.5f * (u[4 + j] - u[8 + j]);
    t[8 + j] = 0.5f * (u[4 + j] + u[8 + j]) + u[12 + j];
  }
  for (int i = 0; i < 3; i++) {  // dg = t G
    const float* r = t + 4 * i;
    dg[3 * i + 0] = r[0] + 0.5f * (r[1] + r[2]);
    dg[3 * i + 1] = 0.5f * (r[1] - r[2]);
    dg[3 * i + 2] = 0.5f * (r[1] + r[2]) + r[3];
  }
}

// The per-item work of the kernels, shared by the CPU and CUDA ones.

// The 4x4 input tile (th, tw) of one image plane of g (zero outside the image).
MS_HD void LoadInputTile(const float* img, const ConvGeom& g, int64_t th, int64_t tw,
                         float d[16]) {
  for (int i = 0; i < 4; i++) {
    const int64_t ih = 2 * th - g.PT + i;
    for (int j = 0; j < 4; j++) {
      const int64_t iw = 2 * tw - g.PL + j;
      d[4 * i + j] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? img[ih * g.W + iw] : 0.f;
    }
  }
}

// The 2x2 output tile (th, tw) of one plane of g's output: stored (+ bias), or loaded (zero
// past the edges).
MS_HD void StoreOutputTile(const float o[4], const float* bias, const ConvGeom& g, int64_t th,
                           int64_t tw, float* plane) {
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      const int64_t oh = 2 * th + i, ow = 2 * tw + j;
      if (oh < g.OH && ow < g.OW)
        plane[oh * g.OW + ow] = bias ? o[2 * i + j] + *bias : o[2 * i + j];
    }
}
MS_HD void LoadOutputTile(const float* plane, const ConvGeom& g, int64_t th, int64_t tw,
                          float d[4]) {
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      const int64_t oh = 2 * th + i, ow = 2 * tw + j;
      d[2 * i + j] = oh < g.OH && ow < g.OW ? plane[oh * g.OW + ow] : 0.f;
    }
}

// Filter kc = k * C + c of w [K][C][3][3] into U (see WinogradFilter).
MS_HD void FilterItem(const float* w, int64_t K, int64_t C, bool flip, int64_t kc, float* U) {
  float g[9], u[16];
  for (int i = 0; i < 9; i++) g[i] = w[kc * 9 + (flip ? 8 - i : i)];
  FilterTile(g, u);
  const int64_t k = kc / C, c = kc % C, at = flip ? c * K + k : kc;
  for (int xi = 0; xi < 16; xi++) U[xi * K * C + at] = u[xi];
}

// dw[kc] from the partial sums P (see WinogradFilterAdjoint), summed in order of p.
MS_HD void FilterAdjointItem(const float* P, int64_t parts, int64_t KC, int64_t kc, float* dw) {
  float u[16], d[9];
  for (int xi = 0; xi < 16; xi++) {
    float acc = 0.f;
    for (int64_t p = 0; p < parts; p++) acc += P[(p * 16 + xi) * KC + kc];
    u[xi] = acc;
  }
  FilterAdjointTile(u, d);
  for (int i = 0; i < 9; i++) dw[kc * 9 + i] = d[i];
}

}  // namespace winograd

namespace kernels {
// Declared once for both namespaces (cpu, cuda); float32. `g` is the convolution's geometry
// (KH = KW = 3, strides and dilations 1); x and y point at the first of `batch` images.
#define MS_WINOGRAD_KERNELS                                                                   \
  /* w is [K][C][3][3]. U[xi][k][c] = the transform of w[k][c]; with `flip`, of w[k][c]      \
     turned 180 degrees, stored U[xi][c][k] (the filter of the data gradient). */          \
  void WinogradFilter(Context* ctx, const float* w, int64_t K, int64_t C, bool flip,       \
                      float* U);                                                            \
  /* V[s][xi][c][t'] for the tiles of `batch` images of x (g.C channels), in `slices`      \
     slices. */                                                                             \
  void WinogradInput(Context* ctx, const float* x, int64_t batch, const ConvGeom& g,        \
                     int64_t slices, float* V);                                             \
  /* Z[s][xi][k][t'] = A dy A^T for the 2x2 tiles of dy (K channels of g.OH x g.OW, zero    \
     past its edges), in `slices` slices. */                                                \
  void WinogradOutputAdjoint(Context* ctx, const float* dy, int64_t batch, const ConvGeom& g, \
                             int64_t K, int64_t slices, float* Z);                          \
  /* dw[k][c] (3x3) = G^T u G with u[xi] = the sum over p < parts of P[p][xi][k][c] (in     \
     order); written. */                                                                    \
  void WinogradFilterAdjoint(Context* ctx, const float* P, int64_t parts, int64_t K,        \
                             int64_t C, float* dw);                                         \
  /* y[b][k] (K channels of g.OH x g.OW) = the output tiles of M[xi][k][t], + bias[k] when  \
     bias is not null; written, not accumulated. */                                         \
  void WinogradOutput(Context* ctx, const float* M, const float* bias, int64_t batch,       \
                      const ConvGeom& g, int64_t K, float* y);

namespace cpu {
MS_WINOGRAD_KERNELS
}  // namespace cpu
namespace cuda {
MS_WINOGRAD_KERNELS
}  // namespace cuda
#undef MS_WINOGRAD_KERNELS
}  // namespace kernels

}  // namespace minisinga
