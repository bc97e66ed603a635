// CPU cast kernels: one flat loop per (source, destination) pair.
#include "kernels/cast.h"

#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

template <typename S, typename D>
void CastLoop(const S* x, D* y, int64_t n) {
#pragma omp parallel for schedule(static) if (n > MS_OMP_MIN)
  for (int64_t i = 0; i < n; i++) y[i] = cast::Store<D>::Do(cast::Load(x[i]));
}

}  // namespace

void Cast(Context*, DType src, DType dst, const void* x, void* y, int64_t n) {
  MS_TYPE_SWITCH(src, S,
                 MS_TYPE_SWITCH(dst, D, CastLoop(static_cast<const S*>(x), static_cast<D*>(y), n)));
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
