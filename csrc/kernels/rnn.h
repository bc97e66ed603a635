// Fused LSTM cell: the elementwise part of one step after the gate pre-activations, one
// kernel each way (PyTorch's gate order i, f, g, o along the 4H columns). With z (n, 4H)
// the pre-activations and c0 (n, H) the previous cell state (null: zeros):
//   i, f, o = sigmoid(z_i, z_f, z_o), g = tanh(z_g); c = f c0 + i g; h = o tanh(c),
// and act (n, 4H) keeps i, f, g, o for the backward, which from dh and dc (n, H; dc the
// gradient reaching c from later steps) computes, with t = tanh(c):
//   dct = dc + dh o (1 - t^2); dz = (dct g i (1 - i), dct c0 f (1 - f), dct i (1 - g^2),
//   dh t o (1 - o)); dc0 = dct f.
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

namespace kernels {
// n rows of H columns; dt float32 or float16; c0 (and then dc0) may be null.
#define MS_LSTM_KERNELS                                                                  \
  void LstmCell(Context* ctx, DType dt, const void* z, const void* c0, void* h, void* c, \
                void* act, int64_t n, int64_t H);                                        \
  void LstmCellBackward(Context* ctx, DType dt, const void* act, const void* c0,          \
                        const void* c, const void* dh, const void* dc, void* dz,         \
                        void* dc0, int64_t n, int64_t H);
namespace cpu {
MS_LSTM_KERNELS
}  // namespace cpu
namespace cuda {
MS_LSTM_KERNELS
}  // namespace cuda
#undef MS_LSTM_KERNELS
}  // namespace kernels
}  // namespace minisinga
