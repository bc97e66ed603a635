// Winograd F(m x m, 3x3) transforms, m = 2 or 4 (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for 3x3, stride-1 convolutions: each a x a input tile
// (a = m + 2) gives an m x m output tile from a^2 products per (input, output) channel pair
// instead of 9 m^2: 16 instead of 36 for m = 2, 36 instead of 144 for m = 4. ops/conv.cc runs
// a convolution as
//   U[xi] = G g G^T  per filter (WinogradFilter),  V[xi] = B^T d B  per input tile
//   (WinogradInput),  M[xi] = U[xi] V[xi]  one GEMM per tile position xi (a^2, batched),
//   y = A^T m A  per output tile, plus bias (WinogradOutput),
// with xi = a * i + j for entry (i, j) of an a x a tile. The tile arithmetic is written once
// below (host and device). F(2x2, 3x3)'s coefficients are 0, +-1 or 1/2, so its transforms
// round only where they add; F(4x4, 3x3)'s (up to 8, and 1/6, 1/12, 1/24 in G) round more:
// its results carry about ten times F(2x2)'s rounding error (up to ~1e-5 of the output's
// scale on ResNet's shapes, float32). The transforms cancel terms exactly only for finite
// values: an Inf in x gives NaN to its whole output tile (im2col would give Inf, and finite
// values to the outputs whose windows miss it), as cuDNN's Winograd does.
//
// Layouts (T tiles: t = (b * tiles_h + th) * tiles_w + tw, tiles_h = ceil(OH / m),
// tiles_w = ceil(OW / m); P = a^2 planes): U [P][K][C], V [S][P][C][T/S], M [P][K][T], where
// the tiles are cut into S slices of T/S (t = s * T/S + t'; S divides the tiles of one image,
// so any number of images): the weight gradient sums over tiles by one GEMM per (slice, xi),
// which keeps a GPU busy where K x C is small (S = 1 elsewhere). A tile (th, tw) reads input
// rows m*th - PT .. + a - 1 and columns m*tw - PL .. + a - 1 (zero outside the image) and
// writes the output rows m*th .. + m - 1 and columns m*tw .. + m - 1 that exist.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/device.h"
#include "core/dtype.h"
#include "kernels/conv.h"  // ConvGeom

namespace minisinga {
namespace winograd {

// F(2x2, 3x3). v = B^T d B; B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <typename V>
MS_HD void InputTile(const V* d, V* v) {
  V t[16];
  for (int j = 0; j < 4; j++) {  // t = B^T d, column by column
    t[0 + j] = d[0 + j] - d[8 + j];
    t[4 + j] = d[4 + j] + d[8 + j];
    t[8 + j] = d[8 + j] - d[4 + j];
    t[12 + j] = d[4 + j] - d[12 + j];
  }
  for (int i = 0; i < 4; i++) {  // v = t B, row by row
    const V* r = t + 4 * i;
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
// m x m tile of dy (OutputAdjointTile), dU[xi][k][c] = sum over t of Z[xi][k][t] V[xi][c][t]
// (GEMMs over the tiles), and dw[k][c] = G^T dU[k][c] G (FilterAdjointTile).

// y = A^T m A (2x2, row-major); A^T = [1 1 1 0; 0 1 -1 -1].
template <typename V>
MS_HD void OutputTile(const V* m, V* y) {
  V t[8];  // t = A^T m (2 x 4)
  for (int j = 0; j < 4; j++) {
    t[0 + j] = m[0 + j] + m[4 + j] + m[8 + j];
    t[4 + j] = m[4 + j] - m[8 + j] - m[12 + j];
  }
  for (int i = 0; i < 2; i++) {
    const V* r = t + 4 * i;
    y[2 * i + 0] = r[0] + r[1] + r[2];
    y[2 * i + 1] = r[1] - r[2] - r[3];
  }
}

// z = A d A^T for a 2x2 tile d (row-major): the adjoint of OutputTile.
template <typename V>
MS_HD void OutputAdjointTile(const V* d, V* z) {
  V t[8];  // t = A d (4 x 2)
  for (int j = 0; j < 2; j++) {
    t[0 + j] = d[0 + j];
    t[2 + j] = d[0 + j] + d[2 + j];
    t[4 + j] = d[0 + j] - d[2 + j];
    t[6 + j] = -d[2 + j];
  }
  for (int i = 0; i < 4; i++) {  // z = t A^T
    const V* r = t + 2 * i;
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

// F(4x4, 3x3): B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
// 0 2 -1 -2 1 0; 0 4 0 -5 0 1], G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6;
// 1/24 -1/12 1/6; 0 0 1], A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
// Each transform applies one 1-D map to the columns, then the same map to the rows.

// q = B^T p for 6 values p[0], p[s], .. p[5s], into q[0], q[s], ...
template <typename V>
MS_HD void InputMap6(const V* p, int s, V* q) {
  const V p0 = p[0], p1 = p[s], p2 = p[2 * s], p3 = p[3 * s], p4 = p[4 * s], p5 = p[5 * s];
  q[0] = 4.f * p0 - 5.f * p2 + p4;
  q[s] = p3 + p4 - 4.f * (p1 + p2);
  q[2 * s] = 4.f * (p1 - p2) + p4 - p3;
  q[3 * s] = 2.f * (p3 - p1) + p4 - p2;
  q[4 * s] = 2.f * (p1 - p3) + p4 - p2;
  q[5 * s] = 4.f * p1 - 5.f * p3 + p5;
}
template <typename V>
MS_HD void InputTile6(const V* d, V* v) {
  V t[36];
  for (int j = 0; j < 6; j++) InputMap6(d + j, 6, t + j);  // t = B^T d
  for (int i = 0; i < 6; i++) InputMap6(t + 6 * i, 1, v + 6 * i);  // v = t B
}

// q = G p for 3 values p[0], p[s], p[2s], into q[0], q[s], .. q[5s].
MS_HD void FilterMap6(const float* p, int s, float* q) {
  const float p0 = p[0], p1 = p[s], p2 = p[2 * s];
  q[0] = 0.25f * p0;
  q[s] = (p0 + p1 + p2) * (-1.f / 6);
  q[2 * s] = (p0 - p1 + p2) * (-1.f / 6);
  q[3 * s] = p0 * (1.f / 24) + p1 * (1.f / 12) + p2 * (1.f / 6);
  q[4 * s] = p0 * (1.f / 24) - p1 * (1.f / 12) + p2 * (1.f / 6);
  q[5 * s] = p2;
}
MS_HD void FilterTile6(const float g[9], float u[36]) {
  float t[18];  // t = G g (6 x 3)
  for (int j = 0; j < 3; j++) FilterMap6(g + j, 3, t + j);
  for (int i = 0; i < 6; i++) FilterMap6(t + 3 * i, 1, u + 6 * i);  // u = t G^T
}

// q = A^T p for 6 values p[0], p[s], .. p[5s], into q[0], q[s], .. q[3s].
template <typename V>
MS_HD void OutputMap4(const V* p, int s, V* q) {
  const V p0 = p[0], p1 = p[s], p2 = p[2 * s], p3 = p[3 * s], p4 = p[4 * s], p5 = p[5 * s];
  const V a = p1 + p2, b = p1 - p2, c = p3 + p4, d = p3 - p4;
  q[0] = p0 + a + c;
  q[s] = b + 2.f * d;
  q[2 * s] = a + 4.f * c;
  q[3 * s] = b + 8.f * d + p5;
}
template <typename V>
MS_HD void OutputTile4(const V* m, V* y) {
  V t[24];  // t = A^T m (4 x 6)
  for (int j = 0; j < 6; j++) OutputMap4(m + j, 6, t + j);
  for (int i = 0; i < 4; i++) OutputMap4(t + 6 * i, 1, y + 4 * i);  // y = t A
}

// The adjoints, for the weight gradient. q = A p for 4 values (p[0] .. p[3s]), into 6.
template <typename V>
MS_HD void OutputAdjointMap4(const V* p, int s, V* q) {
  const V p0 = p[0], p1 = p[s], p2 = p[2 * s], p3 = p[3 * s];
  const V e = p0 + p2, o = p1 + p3, e4 = p0 + 4.f * p2, o8 = 2.f * p1 + 8.f * p3;
  q[0] = p0;
  q[s] = e + o;
  q[2 * s] = e - o;
  q[3 * s] = e4 + o8;
  q[4 * s] = e4 - o8;
  q[5 * s] = p3;
}
template <typename V>
MS_HD void OutputAdjointTile4(const V* d, V* z) {
  V t[24];  // t = A d (6 x 4)
  for (int j = 0; j < 4; j++) OutputAdjointMap4(d + j, 4, t + j);
  for (int i = 0; i < 6; i++) OutputAdjointMap4(t + 4 * i, 1, z + 6 * i);  // z = t A^T
}

// q = G^T p for 6 values (p[0] .. p[5s]), into 3.
MS_HD void FilterAdjointMap6(const float* p, int s, float* q) {
  const float p0 = p[0], p1 = p[s], p2 = p[2 * s], p3 = p[3 * s], p4 = p[4 * s], p5 = p[5 * s];
  q[0] = 0.25f * p0 - (p1 + p2) * (1.f / 6) + (p3 + p4) * (1.f / 24);
  q[s] = (p2 - p1) * (1.f / 6) + (p3 - p4) * (1.f / 12);
  q[2 * s] = (p3 + p4 - p1 - p2) * (1.f / 6) + p5;
}
MS_HD void FilterAdjointTile6(const float u[36], float dg[9]) {
  float t[18];  // t = G^T u (3 x 6)
  for (int j = 0; j < 6; j++) FilterAdjointMap6(u + j, 6, t + j);
  for (int i = 0; i < 3; i++) FilterAdjointMap6(t + 6 * i, 1, dg + 3 * i);  // dg = t G
}

// The transforms of F(m x m, 3x3) by m (2 or 4). Input, Output and OutputAdjoint are templates
// on the value type V: float, or (CPU kernels) a vector of floats, one tile per lane.
template <int M>
struct Tile {
  static_assert(M == 2 || M == 4, "Winograd F(m x m, 3x3) is built for m = 2 and m = 4");
  template <typename V>
  static MS_HD void Input(const V* d, V* v) {
    if constexpr (M == 2) InputTile(d, v); else InputTile6(d, v);
  }
  static MS_HD void Filter(const float* g, float* u) {
    if constexpr (M == 2) FilterTile(g, u); else FilterTile6(g, u);
  }
  template <typename V>
  static MS_HD void Output(const V* m, V* y) {
    if constexpr (M == 2) OutputTile(m, y); else OutputTile4(m, y);
  }
  template <typename V>
  static MS_HD void OutputAdjoint(const V* d, V* z) {
    if constexpr (M == 2) OutputAdjointTile(d, z); else OutputAdjointTile4(d, z);
  }
  static MS_HD void FilterAdjoint(const float* u, float* dg) {
    if constexpr (M == 2) FilterAdjointTile(u, dg); else FilterAdjointTile6(u, dg);
  }
};

// The per-item work of the kernels, shared by the CPU and CUDA ones.

// Planes of F(m x m, 3x3)'s tiles ((m + 2)^2), and its output tiles along a side of n.
constexpr int Planes(int m) { return (m + 2) * (m + 2); }
constexpr int64_t Tiles(int64_t n, int m) { return (n + m - 1) / m; }

// f(std::integral_constant<int, m>{}) for m = 2 or 4 (host code: picks the kernels' M).
template <typename F>
void WithTile(int m, F f) {
  if (m == 4)
    f(std::integral_constant<int, 4>{});
  else
    f(std::integral_constant<int, 2>{});
}

// The A x A window at rows m*th - pt .. and columns m*tw - pl .. of an h x w plane (zero
// outside it): an input tile (A = M + 2, the convolution's padding) or a tile of dy (A = M,
// no padding; zero past its edges).
template <int M, int A>
MS_HD void LoadWindow(const float* plane, int64_t h, int64_t w, int64_t pt, int64_t pl,
                      int64_t th, int64_t tw, float* d) {
  for (int i = 0; i < A; i++) {
    const int64_t ih = M * th - pt + i;
    for (int j = 0; j < A; j++) {
      const int64_t iw = M * tw - pl + j;
      d[A * i + j] = ih >= 0 && ih < h && iw >= 0 && iw < w ? plane[ih * w + iw] : 0.f;
    }
  }
}

// The output tile (th, tw) of one plane of g's output, stored (+ bias) where it exists.
template <int M>
MS_HD void StoreOutputTile(const float* o, const float* bias, const ConvGeom& g, int64_t th,
                           int64_t tw, float* plane) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < M; j++) {
      const int64_t oh = M * th + i, ow = M * tw + j;
      if (oh < g.OH && ow < g.OW)
        plane[oh * g.OW + ow] = bias ? o[M * i + j] + *bias : o[M * i + j];
    }
}

// u = the transform of the filter in column j of U (see WinogradFilter): w[j / C][j % C], or
// with `flip` w[j % K][j / K] turned 180 degrees. Consecutive j write consecutive columns of
// each plane of U (the flipped filters are read apart instead).
template <int M>
MS_HD void FilterColumn(const float* w, int64_t K, int64_t C, bool flip, int64_t j, float* u) {
  const int64_t kc = flip ? (j % K) * C + j / K : j;
  float g[9];
  for (int i = 0; i < 9; i++) g[i] = w[kc * 9 + (flip ? 8 - i : i)];
  Tile<M>::Filter(g, u);
}

// dw[kc] = G^T u G for the 3x3 filter kc, u = the sums over p < parts of P[p][xi][kc] (in
// order of p; see WinogradFilterAdjoint).
template <int M>
MS_HD void FilterAdjointColumn(const float* u, int64_t kc, float* dw) {
  float d[9];
  Tile<M>::FilterAdjoint(u, d);
  for (int i = 0; i < 9; i++) dw[kc * 9 + i] = d[i];
}

}  // namespace winograd

namespace kernels {
// Declared once for both namespaces (cpu, cuda); float32; m (2 or 4) picks F(m x m, 3x3) and
// P = (m + 2)^2 planes. `g` is the convolution's geometry (KH = KW = 3, strides and dilations
// 1); x and y point at the first of `batch` images.
#define MS_WINOGRAD_KERNELS                                                                   \
  /* w is [K][C][3][3]. U[xi][k][c] = the transform of w[k][c]; with `flip`, of w[k][c]      \
     turned 180 degrees, stored U[xi][c][k] (the filter of the data gradient). */          \
  void WinogradFilter(Context* ctx, int m, const float* w, int64_t K, int64_t C, bool flip, \
                      float* U);                                                            \
  /* V[s][xi][c][t'] for the tiles of `batch` images of x (g.C channels), in `slices`      \
     slices. */                                                                             \
  void WinogradInput(Context* ctx, int m, const float* x, int64_t batch, const ConvGeom& g, \
                     int64_t slices, float* V);                                             \
  /* Z[s][xi][k][t'] = A dy A^T for the m x m tiles of dy (K channels of g.OH x g.OW, zero  \
     past its edges), in `slices` slices. */                                                \
  void WinogradOutputAdjoint(Context* ctx, int m, const float* dy, int64_t batch,           \
                             const ConvGeom& g, int64_t K, int64_t slices, float* Z);       \
  /* dw[k][c] (3x3) = G^T u G with u[xi] = the sum over p < parts of P[p][xi][k][c] (in     \
     order); written. */                                                                    \
  void WinogradFilterAdjoint(Context* ctx, int m, const float* P, int64_t parts, int64_t K, \
                             int64_t C, float* dw);                                         \
  /* y[b][k] (K channels of g.OH x g.OW) = the output tiles of M[xi][k][t], + bias[k] when  \
     bias is not null; written, not accumulated. */                                         \
  void WinogradOutput(Context* ctx, int m, const float* M, const float* bias, int64_t batch, \
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
