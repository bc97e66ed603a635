#include "ops/pool.h"

#include <climits>

#include "core/dispatch.h"
#include "kernels/pool.h"

namespace minisinga {
namespace ops {

namespace {

ConvGeom PoolGeom(const char* op, const Shape& x_shape, const Ints& kernel,
                  const Ints& stride, const Ints& padding) {
  MS_CHECK(x_shape.size() == 4, op << ": x must be 4-D (N, C, H, W), got shape "
                                   << ShapeStr(x_shape));
  CheckPair(op, "kernel", kernel, 1);
  ConvGeom g = WindowGeom(op, x_shape, kernel[0], kernel[1], stride,
                          ExpandPadding(op, padding), {1, 1});
  MS_CHECK(g.H * g.W < INT_MAX, op << ": planes of x " << ShapeStr(x_shape)
                                   << " are too large for int32 indices");
  return g;
}

}  // namespace

std::tuple<Tensor, std::optional<Tensor>> Pool2d(const Tensor& x, const Ints& kernel,
                                                 const Ints& stride, const Ints& padding,
                                                 bool is_max, bool count_include_pad) {
  const char* op = "pool2d";
  CheckDType(op, x, {DType::kFloat32, DType::kFloat16}, "x");
  const ConvGeom g = PoolGeom(op, x.shape(), kernel, stride, padding);
  const Shape y_shape{x.shape(0), g.C, g.OH, g.OW};
  const int64_t planes = x.shape(0) * g.C;
  const DType dt = x.dtype();
  Tensor y(y_shape, x.device(), dt);
  std::optional<Tensor> idx;
  if (is_max) idx = Tensor(y_shape, x.device(), DType::kInt32);
  if (y.numel() == 0) return {y, idx};
  TensorRef xr = x.ref(), yr = y.ref();
  if (is_max) {
    TensorRef ir = idx->ref();
    x.device()->Exec(
        [=](Context* ctx) {
          FloatSwitch(dt, [&](auto tag) {
            using T = decltype(tag);
            MS_DISPATCH(ctx, MaxPool2d, xr.data<T>(), planes, g, yr.mutable_data<T>(),
                        ir.mutable_data<int32_t>());
          });
        },
        {x.block()}, {y.block(), idx->block()}, "MaxPool2d");
  } else {
    x.device()->Exec(
        [=](Context* ctx) {
          FloatSwitch(dt, [&](auto tag) {
            using T = decltype(tag);
            MS_DISPATCH(ctx, AvgPool2d, xr.data<T>(), planes, g, count_include_pad,
                        yr.mutable_data<T>());
          });
        },
        {x.block()}, {y.block()}, "AvgPool2d");
  }
  return {y, idx};
}

Tensor Pool2dBackward(const Tensor& dy, const Shape& x_shape,
                      const std::optional<Tensor>& indices, const Ints& kernel,
                      const Ints& stride, const Ints& padding, bool is_max,
                      bool count_include_pad) {
  const char* op = "pool2d_backward";
  CheckDType(op, dy, {DType::kFloat32, DType::kFloat16}, "dy");
  const ConvGeom g = PoolGeom(op, x_shape, kernel, stride, padding);
  const Shape y_shape{x_shape[0], g.C, g.OH, g.OW};
  MS_CHECK(dy.shape() == y_shape, op << ": dy has shape " << ShapeStr(dy.shape())
                                     << ", expected " << ShapeStr(y_shape) << " for x "
                                     << ShapeStr(x_shape));
  if (is_max) {
    MS_CHECK(indices.has_value(), op << ": max pooling needs the indices from pool2d");
    CheckDType(op, *indices, {DType::kInt32}, "indices");
    CheckSameDevice(op, dy, *indices);
    MS_CHECK(indices->shape() == y_shape, op << ": indices have shape "
                                             << ShapeStr(indices->shape()) << ", expected "
                                             << ShapeStr(y_shape));
  }
  const int64_t planes = x_shape[0] * g.C;
  const DType dt = dy.dtype();
  Tensor dx(x_shape, dy.device(), dt);
  if (dx.numel() == 0) return dx;
  TensorRef dyr = dy.ref(), dxr = dx.ref();
  if (is_max) {
    TensorRef ir = indices->ref();
    dy.device()->Exec(
        [=](Context* ctx) {
          FloatSwitch(dt, [&](auto tag) {
            using T = decltype(tag);
            MS_DISPATCH(ctx, MaxPool2dBackward, dyr.data<T>(), ir.data<int32_t>(), planes, g,
                        dxr.mutable_data<T>());
          });
        },
        {dy.block(), indices->block()}, {dx.block()}, "MaxPool2dBackward");
  } else {
    dy.device()->Exec(
        [=](Context* ctx) {
          FloatSwitch(dt, [&](auto tag) {
            using T = decltype(tag);
            MS_DISPATCH(ctx, AvgPool2dBackward, dyr.data<T>(), planes, g, count_include_pad,
                        dxr.mutable_data<T>());
          });
        },
        {dy.block()}, {dx.block()}, "AvgPool2dBackward");
  }
  return dx;
}

}  // namespace ops
}  // namespace minisinga
