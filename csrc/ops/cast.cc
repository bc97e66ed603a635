#include "ops/cast.h"

#include "core/dispatch.h"
#include "kernels/cast.h"

namespace minisinga {
namespace ops {

Tensor AsType(const Tensor& x, DType dtype) {
  Tensor y(x.shape(), x.device(), dtype);
  TensorRef xr = x.ref(), yr = y.ref();
  DType src = x.dtype();
  x.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Cast, src, dtype, xr.data<char>(), yr.mutable_data<char>(), xr.numel());
      },
      {x.block()}, {y.block()}, "AsType");
  return y;
}

}  // namespace ops
}  // namespace minisinga
