// Fused LSTM cell: the elementwise part of one step after the gate pre-activations, one
// kernel each way (PyTorch's gate order i, f, g, o along the 4H columns). With z (n, 4H)
// the pre-activations and c0 (n, H) the previous cell state (null: zeros):
//   i, f, o = sigmoid(z_i, z_f, z_o), g = tanh(z_g); c = f c0 + i g; h = o tanh(c),
// and act (n, 4H) keeps i, f, g, o for the backward, which from dh and dc (n, H; dc the
// gradient reaching c from later steps) computes, with t = tanh(c):
//   dct = dc + dh o (1 - t^2); dz = (dct g i (1 - i), dct c0 f (1 - f), dct i (1 - g^2),
//   dh t o (1 - o)); dc0 = dct f.
// Fused GRU cell, the same way (PyTorch's gate order r, z, n along the 3H columns): from the
// input side's pre-activations gx (n, 3H), the hidden side's gh = h Wh + bh (n, 3H) and h:
//   r, z = sigmoid(gx_r + gh_r, gx_z + gh_z), n = tanh(gx_n + r gh_n), h' = n + z (h - n),
// and act (n, 4H) keeps r, z, n, gh_n; the backward, from dh', computes with
// a = dh' (1 - z) (1 - n^2): dgx = (dr, dz, a), dgh = (dr, dz, a r), dh = dh' z, where
// dr = a gh_n r (1 - r) and dz = dh' (h - n) z (1 - z).
// Arithmetic in float32 for float16 storage. The MS_HD element functions below are the
// whole computation; the CPU and CUDA kernels only loop over (row, column).
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"
#include "kernels/elementwise_ops.h"

namespace minisinga {
namespace lstm {

// One (row, column) element, on values (so that the CPU's loops over a row vectorise).
struct Cell {
  float h, c, i, f, g, o;
};
MS_HD Cell CellForward(float zi, float zf, float zg, float zo, float c0) {
  Cell s;
  s.i = ew::Sigmoid(zi);
  s.f = ew::Sigmoid(zf);
  s.g = ew::Tanh(zg);
  s.o = ew::Sigmoid(zo);
  s.c = s.f * c0 + s.i * s.g;
  s.h = s.o * ew::Tanh(s.c);
  return s;
}

struct CellGrad {
  float di, df, dg, dout, dc0;  // dz of the four gates, and dc0
};
MS_HD CellGrad CellBackward(float i, float f, float g, float o, float c, float c0, float dh,
                            float dc) {
  const float t = ew::Tanh(c), dct = dc + dh * o * (1.0f - t * t);
  CellGrad d;
  d.di = dct * g * i * (1.0f - i);
  d.df = dct * c0 * f * (1.0f - f);
  d.dg = dct * i * (1.0f - g * g);
  d.dout = dh * t * o * (1.0f - o);
  d.dc0 = dct * f;
  return d;
}

// The element (r, j) of (n, H) states with gates (n, 4H), read and written in storage type T;
// kC0: whether there is a c0 (a compile-time choice: a conditional load keeps the CPU's loop
// scalar).
template <bool kC0, typename T>
MS_HD void ForwardAt(const T* z, const T* c0, T* h, T* c, T* act, int64_t r, int64_t j,
                     int64_t H) {
  const T* zr = z + r * 4 * H;
  T* ar = act + r * 4 * H;
  const int64_t k = r * H + j;
  const Cell s = CellForward(Cvt<T>::Load(zr[j]), Cvt<T>::Load(zr[H + j]),
                             Cvt<T>::Load(zr[2 * H + j]), Cvt<T>::Load(zr[3 * H + j]),
                             kC0 ? Cvt<T>::Load(c0[k]) : 0.0f);
  h[k] = Cvt<T>::Store(s.h);
  c[k] = Cvt<T>::Store(s.c);
  ar[j] = Cvt<T>::Store(s.i);
  ar[H + j] = Cvt<T>::Store(s.f);
  ar[2 * H + j] = Cvt<T>::Store(s.g);
  ar[3 * H + j] = Cvt<T>::Store(s.o);
}

template <bool kC0, typename T>
MS_HD void BackwardAt(const T* act, const T* c0, const T* c, const T* dh, const T* dc, T* dz,
                      T* dc0, int64_t r, int64_t j, int64_t H) {
  const T* ar = act + r * 4 * H;
  T* dzr = dz + r * 4 * H;
  const int64_t k = r * H + j;
  const CellGrad d = CellBackward(Cvt<T>::Load(ar[j]), Cvt<T>::Load(ar[H + j]),
                                  Cvt<T>::Load(ar[2 * H + j]), Cvt<T>::Load(ar[3 * H + j]),
                                  Cvt<T>::Load(c[k]), kC0 ? Cvt<T>::Load(c0[k]) : 0.0f,
                                  Cvt<T>::Load(dh[k]), Cvt<T>::Load(dc[k]));
  dzr[j] = Cvt<T>::Store(d.di);
  dzr[H + j] = Cvt<T>::Store(d.df);
  dzr[2 * H + j] = Cvt<T>::Store(d.dg);
  dzr[3 * H + j] = Cvt<T>::Store(d.dout);
  if (kC0) dc0[k] = Cvt<T>::Store(d.dc0);
}

}  // namespace lstm

namespace gru {

struct Cell {
  float h, r, z, n;
};
MS_HD Cell CellForward(float xr, float xz, float xn, float hr, float hz, float hn, float h) {
  Cell s;
  s.r = ew::Sigmoid(xr + hr);
  s.z = ew::Sigmoid(xz + hz);
  s.n = ew::Tanh(xn + s.r * hn);
  s.h = s.n + s.z * (h - s.n);
  return s;
}

struct CellGrad {
  float dr, dz, dn, dhn, dh;  // pre-activation gradients; dhn = dn r; dh of the old state
};
MS_HD CellGrad CellBackward(float r, float z, float n, float hn, float h, float g) {
  CellGrad d;
  d.dn = g * (1.0f - z) * (1.0f - n * n);
  d.dhn = d.dn * r;
  d.dr = d.dn * hn * r * (1.0f - r);
  d.dz = g * (h - n) * z * (1.0f - z);
  d.dh = g * z;
  return d;
}

// The element (r, j) of (n, H) states; gx, gh (n, 3H), act (n, 4H), in storage type T.
template <typename T>
MS_HD void ForwardAt(const T* gx, const T* gh, const T* h, T* y, T* act, int64_t r, int64_t j,
                     int64_t H) {
  const T* xr = gx + r * 3 * H;
  const T* hr = gh + r * 3 * H;
  T* ar = act + r * 4 * H;
  const int64_t k = r * H + j;
  const float hn = Cvt<T>::Load(hr[2 * H + j]);
  const Cell s = CellForward(Cvt<T>::Load(xr[j]), Cvt<T>::Load(xr[H + j]),
                             Cvt<T>::Load(xr[2 * H + j]), Cvt<T>::Load(hr[j]),
                             Cvt<T>::Load(hr[H + j]), hn, Cvt<T>::Load(h[k]));
  y[k] = Cvt<T>::Store(s.h);
  ar[j] = Cvt<T>::Store(s.r);
  ar[H + j] = Cvt<T>::Store(s.z);
  ar[2 * H + j] = Cvt<T>::Store(s.n);
  ar[3 * H + j] = Cvt<T>::Store(hn);
}

template <typename T>
MS_HD void BackwardAt(const T* act, const T* h, const T* dy, T* dgx, T* dgh, T* dh, int64_t r,
                      int64_t j, int64_t H) {
  const T* ar = act + r * 4 * H;
  T* xr = dgx + r * 3 * H;
  T* hr = dgh + r * 3 * H;
  const int64_t k = r * H + j;
  const CellGrad d = CellBackward(Cvt<T>::Load(ar[j]), Cvt<T>::Load(ar[H + j]),
                                  Cvt<T>::Load(ar[2 * H + j]), Cvt<T>::Load(ar[3 * H + j]),
                                  Cvt<T>::Load(h[k]), Cvt<T>::Load(dy[k]));
  xr[j] = hr[j] = Cvt<T>::Store(d.dr);
  xr[H + j] = hr[H + j] = Cvt<T>::Store(d.dz);
  xr[2 * H + j] = Cvt<T>::Store(d.dn);
  hr[2 * H + j] = Cvt<T>::Store(d.dhn);
  dh[k] = Cvt<T>::Store(d.dh);
}

}  // namespace gru

namespace kernels {
// n rows of H columns; dt float32 or float16; LSTM's c0 (and then dc0) may be null.
#define MS_LSTM_KERNELS                                                                  \
  void LstmCell(Context* ctx, DType dt, const void* z, const void* c0, void* h, void* c, \
                void* act, int64_t n, int64_t H);                                        \
  void LstmCellBackward(Context* ctx, DType dt, const void* act, const void* c0,          \
                        const void* c, const void* dh, const void* dc, void* dz,         \
                        void* dc0, int64_t n, int64_t H);                        \
  void GruCell(Context* ctx, DType dt, const void* gx, const void* gh, const void* h,    \
               void* y, void* act, int64_t n, int64_t H);                                \
  void GruCellBackward(Context* ctx, DType dt, const void* act, const void* h,           \
                       const void* dy, void* dgx, void* dgh, void* dh, int64_t n,         \
                       int64_t H);
namespace cpu {
MS_LSTM_KERNELS
}  // namespace cpu
namespace cuda {
MS_LSTM_KERNELS
}  // namespace cuda
#undef MS_LSTM_KERNELS
}  // namespace kernels
}  // namespace minisinga
