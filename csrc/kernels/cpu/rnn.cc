// CPU fused LSTM and GRU cells: a row per work item, its columns in a loop that vectorises for
// float32 (kernels/rnn.h has the math).
#include "kernels/rnn.h"

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// ~4 exponentials per element: worth threads from about a thousand elements.
constexpr int64_t kCostPerElement = 32;

// One row's columns. The tensors never overlap: without __restrict__ the compiler must assume
// the gate stores may change the gates still to be read, and keeps the loop scalar (and the
// qualifiers only hold in a call that is not inlined into the OpenMP region).
template <bool kC0, typename T>
[[gnu::noinline]] void ForwardRow(const T* __restrict__ z, const T* __restrict__ c0,
                                  T* __restrict__ h, T* __restrict__ c, T* __restrict__ act,
                                  int64_t r, int64_t H) {
  for (int64_t j = 0; j < H; j++) lstm::ForwardAt<kC0>(z, c0, h, c, act, r, j, H);
}

template <bool kC0, typename T>
[[gnu::noinline]] void BackwardRow(const T* __restrict__ act, const T* __restrict__ c0,
                                   const T* __restrict__ c, const T* __restrict__ dh,
                                   const T* __restrict__ dc, T* __restrict__ dz,
                                   T* __restrict__ dc0, int64_t r, int64_t H) {
  for (int64_t j = 0; j < H; j++) lstm::BackwardAt<kC0>(act, c0, c, dh, dc, dz, dc0, r, j, H);
}

template <typename T>
void CellRows(const T* z, const T* c0, T* h, T* c, T* act, int64_t n, int64_t H) {
  const auto row = c0 ? ForwardRow<true, T> : ForwardRow<false, T>;
#pragma omp parallel for schedule(static) if (n * H * kCostPerElement > MS_OMP_MIN)
  for (int64_t r = 0; r < n; r++) row(z, c0, h, c, act, r, H);
}

template <typename T>
void CellBackwardRows(const T* act, const T* c0, const T* c, const T* dh, const T* dc, T* dz,
                      T* dc0, int64_t n, int64_t H) {
  const auto row = c0 ? BackwardRow<true, T> : BackwardRow<false, T>;
#pragma omp parallel for schedule(static) if (n * H * kCostPerElement > MS_OMP_MIN)
  for (int64_t r = 0; r < n; r++) row(act, c0, c, dh, dc, dz, dc0, r, H);
}

template <typename T>
[[gnu::noinline]] void GruForwardRow(const T* __restrict__ gx, const T* __restrict__ gh,
                                     const T* __restrict__ h, T* __restrict__ y,
                                     T* __restrict__ act, int64_t r, int64_t H) {
  for (int64_t j = 0; j < H; j++) gru::ForwardAt(gx, gh, h, y, act, r, j, H);
}

template <typename T>
[[gnu::noinline]] void GruBackwardRow(const T* __restrict__ act, const T* __restrict__ h,
                                      const T* __restrict__ dy, T* __restrict__ dgx,
                                      T* __restrict__ dgh, T* __restrict__ dh, int64_t r,
                                      int64_t H) {
  for (int64_t j = 0; j < H; j++) gru::BackwardAt(act, h, dy, dgx, dgh, dh, r, j, H);
}

}  // namespace

void LstmCell(Context*, DType dt, const void* z, const void* c0, void* h, void* c, void* act,
              int64_t n, int64_t H) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    CellRows(static_cast<const T*>(z), static_cast<const T*>(c0), static_cast<T*>(h),
             static_cast<T*>(c), static_cast<T*>(act), n, H);
  });
}

void LstmCellBackward(Context*, DType dt, const void* act, const void* c0, const void* c,
                      const void* dh, const void* dc, void* dz, void* dc0, int64_t n,
                      int64_t H) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    CellBackwardRows(static_cast<const T*>(act), static_cast<const T*>(c0),
                     static_cast<const T*>(c), static_cast<const T*>(dh),
                     static_cast<const T*>(dc), static_cast<T*>(dz), static_cast<T*>(dc0), n,
                     H);
  });
}

void GruCell(Context*, DType dt, const void* gx, const void* gh, const void* h, void* y,
             void* act, int64_t n, int64_t H) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
#pragma omp parallel for schedule(static) if (n * H * kCostPerElement > MS_OMP_MIN)
    for (int64_t r = 0; r < n; r++)
      GruForwardRow(static_cast<const T*>(gx), static_cast<const T*>(gh),
                    static_cast<const T*>(h), static_cast<T*>(y), static_cast<T*>(act), r, H);
  });
}

void GruCellBackward(Context*, DType dt, const void* act, const void* h, const void* dy,
                     void* dgx, void* dgh, void* dh, int64_t n, int64_t H) {
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
#pragma omp parallel for schedule(static) if (n * H * kCostPerElement > MS_OMP_MIN)
    for (int64_t r = 0; r < n; r++)
      GruBackwardRow(static_cast<const T*>(act), static_cast<const T*>(h),
                     static_cast<const T*>(dy), static_cast<T*>(dgx), static_cast<T*>(dgh),
                     static_cast<T*>(dh), r, H);
  });
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
