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

void CastInto(const Tensor& dst, const Tensor& src) {
  CheckSameDevice("cast_into", dst, src);
  MS_CHECK(dst.shape() == src.shape(), "cast_into: dst has shape " << ShapeStr(dst.shape())
                                           << ", src " << ShapeStr(src.shape()));
  if (dst.dtype() == src.dtype() && dst.block() == src.block() && dst.offset() == src.offset())
    return;
  TensorRef sr = src.ref(), dr = dst.ref();
  DType from = src.dtype(), to = dst.dtype();
  dst.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Cast, from, to, sr.data<char>(), dr.mutable_data<char>(), sr.numel());
      },
      {src.block()}, {dst.block()}, "CastInto");
}

}  // namespace ops
}  // namespace minisinga
