// CUDA cast kernels: one grid-stride loop per (source, destination) pair, with the MS_HD
// conversions of cast.h, so every device rounds and saturates alike.
#include <cstdint>

#include "core/dispatch.h"
#include "kernels/cast.h"
#include "kernels/cuda/util.cuh"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

template <typename S, typename D>
__global__ void CastKernel(const S* x, D* y, int64_t n) {
  MS_CUDA_LOOP(i, n) y[i] = cast::Store<D>::Do(cast::Load(x[i]));
}

}  // namespace

void Cast(Context* ctx, DType src, DType dst, const void* x, void* y, int64_t n) {
  if (n <= 0) return;
  cudaStream_t s = cudak::Stream(ctx);
  MS_TYPE_SWITCH(src, S, MS_TYPE_SWITCH(dst, D, {
    CastKernel<S, D><<<cudak::Blocks(n), cudak::kThreads, 0, s>>>(static_cast<const S*>(x),
                                                                  static_cast<D*>(y), n);
  }));
  MS_CUDA_LAUNCH_CHECK("CastKernel");
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
