// CUDA fused LSTM and GRU cells: a grid-stride loop over the n * H (row, column) pairs
// (kernels/rnn.h has the math).
#include <cstdint>

#include "core/dispatch.h"
#include "kernels/cuda/util.cuh"
#include "kernels/rnn.h"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

template <bool kC0, typename T>
__global__ void LstmCellKernel(const T* z, const T* c0, T* h, T* c, T* act, int64_t n,
                               int64_t H) {
  MS_CUDA_LOOP(k, n * H) lstm::ForwardAt<kC0>(z, c0, h, c, act, k / H, k % H, H);
}

template <bool kC0, typename T>
__global__ void LstmCellBackwardKernel(const T* act, const T* c0, const T* c, const T* dh,
                                       const T* dc, T* dz, T* dc0, int64_t n, int64_t H) {
  MS_CUDA_LOOP(k, n * H) lstm::BackwardAt<kC0>(act, c0, c, dh, dc, dz, dc0, k / H, k % H, H);
}

template <typename T>
__global__ void GruCellKernel(const T* gx, const T* gh, const T* h, T* y, T* act, int64_t n,
                              int64_t H) {
  MS_CUDA_LOOP(k, n * H) gru::ForwardAt(gx, gh, h, y, act, k / H, k % H, H);
}

template <typename T>
__global__ void GruCellBackwardKernel(const T* act, const T* h, const T* dy, T* dgx, T* dgh,
                                      T* dh, int64_t n, int64_t H) {
  MS_CUDA_LOOP(k, n * H) gru::BackwardAt(act, h, dy, dgx, dgh, dh, k / H, k % H, H);
}

template <bool kC0, typename T>
void LaunchForward(cudaStream_t s, const void* z, const void* c0, void* h, void* c, void* act,
                   int64_t n, int64_t H) {
  LstmCellKernel<kC0, T><<<cudak::Blocks(n * H), cudak::kThreads, 0, s>>>(
      static_cast<const T*>(z), static_cast<const T*>(c0), static_cast<T*>(h),
      static_cast<T*>(c), static_cast<T*>(act), n, H);
}

template <bool kC0, typename T>
void LaunchBackward(cudaStream_t s, const void* act, const void* c0, const void* c,
                    const void* dh, const void* dc, void* dz, void* dc0, int64_t n, int64_t H) {
  LstmCellBackwardKernel<kC0, T><<<cudak::Blocks(n * H), cudak::kThreads, 0, s>>>(
      static_cast<const T*>(act), static_cast<const T*>(c0), static_cast<const T*>(c),
      static_cast<const T*>(dh), static_cast<const T*>(dc), static_cast<T*>(dz),
      static_cast<T*>(dc0), n, H);
}

}  // namespace

void LstmCell(Context* ctx, DType dt, const void* z, const void* c0, void* h, void* c, void* act,
              int64_t n, int64_t H) {
  if (n * H <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    if (c0)
      LaunchForward<true, T>(s, z, c0, h, c, act, n, H);
    else
      LaunchForward<false, T>(s, z, c0, h, c, act, n, H);
  });
  MS_CUDA_LAUNCH_CHECK("LstmCellKernel");
}

void LstmCellBackward(Context* ctx, DType dt, const void* act, const void* c0, const void* c,
                      const void* dh, const void* dc, void* dz, void* dc0, int64_t n,
                      int64_t H) {
  if (n * H <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    if (c0)
      LaunchBackward<true, T>(s, act, c0, c, dh, dc, dz, dc0, n, H);
    else
      LaunchBackward<false, T>(s, act, c0, c, dh, dc, dz, dc0, n, H);
  });
  MS_CUDA_LAUNCH_CHECK("LstmCellBackwardKernel");
}

void GruCell(Context* ctx, DType dt, const void* gx, const void* gh, const void* h, void* y,
             void* act, int64_t n, int64_t H) {
  if (n * H <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    GruCellKernel<T><<<cudak::Blocks(n * H), cudak::kThreads, 0, s>>>(
        static_cast<const T*>(gx), static_cast<const T*>(gh), static_cast<const T*>(h),
        static_cast<T*>(y), static_cast<T*>(act), n, H);
  });
  MS_CUDA_LAUNCH_CHECK("GruCellKernel");
}

void GruCellBackward(Context* ctx, DType dt, const void* act, const void* h, const void* dy,
                     void* dgx, void* dgh, void* dh, int64_t n, int64_t H) {
  if (n * H <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  FloatSwitch(dt, [&](auto tag) {
    using T = decltype(tag);
    GruCellBackwardKernel<T><<<cudak::Blocks(n * H), cudak::kThreads, 0, s>>>(
        static_cast<const T*>(act), static_cast<const T*>(h), static_cast<const T*>(dy),
        static_cast<T*>(dgx), static_cast<T*>(dgh), static_cast<T*>(dh), n, H);
  });
  MS_CUDA_LAUNCH_CHECK("GruCellBackwardKernel");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
