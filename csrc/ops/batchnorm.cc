#include "ops/batchnorm.h"

#include <cmath>
#include <initializer_list>
#include <optional>
#include <vector>

#include "core/dispatch.h"
#include "kernels/batchnorm.h"
#include "ops/half.h"

namespace minisinga {
namespace ops {

// The kernels read and write the activations (x, y, dy, dx) in x's dtype, float32 or float16,
// and the per-channel operands (scale, bias, running statistics; dscale, dbias) in theirs
// where all of them are float32, or all float16 beside float16 x: no casts, the running
// statistics updated in place. Other mixes of float16 and float32 (e.g. float16 scale beside
// float32 running statistics, or float16 parameters beside float32 x) run on float32 copies
// of the per-channel operands (C values each, ops/half.h): float16 running statistics are
// cast back after the update, dscale and dbias returned in scale's dtype. The saved statistics
// are float32 outputs; the kernels take them in float32 (copies of float16 ones passed in).

namespace {

// N, C and S (product of the spatial dims) of x, after checking it.
struct Dims {
  int64_t n, c, s;
};

Dims CheckInput(const char* op, const Tensor& x) {
  CheckDType(op, x, {DType::kFloat32, DType::kFloat16}, "x");
  MS_CHECK(x.ndim() >= 2, op << ": x must have shape (N, C) or (N, C, H, W), got "
                             << ShapeStr(x.shape()));
  Dims d{x.shape(0), x.shape(1), 1};
  for (int i = 2; i < x.ndim(); i++) d.s *= x.shape()[i];
  return d;
}

// A per-channel tensor: float32 (or float16), shape (C,), on x's device.
void CheckChannel(const char* op, const Tensor& x, const Tensor& t, const char* what) {
  CheckSameDevice(op, x, t);
  CheckDType(op, t, {DType::kFloat32, DType::kFloat16}, what);
  MS_CHECK(t.shape() == Shape{x.shape(1)}, op << ": " << what << " has shape "
                                              << ShapeStr(t.shape()) << ", expected ("
                                              << x.shape(1) << ",) for x of shape "
                                              << ShapeStr(x.shape()));
}

// A fused residual: x's shape, dtype and device.
void CheckResidual(const char* op, const Tensor& x, const std::optional<Tensor>& r) {
  if (!r) return;
  CheckSameDevice(op, x, *r);
  MS_CHECK_TYPE(r->dtype() == x.dtype(), op << ": residual has dtype " << DTypeName(r->dtype())
                                            << ", expected x's dtype " << DTypeName(x.dtype()));
  MS_CHECK(r->shape() == x.shape(), op << ": residual has shape " << ShapeStr(r->shape())
                                       << ", expected x's shape " << ShapeStr(x.shape()));
}

void CheckEps(const char* op, double eps) {
  MS_CHECK(eps >= 0 && std::isfinite(eps), op << ": eps must be finite and >= 0, got " << eps);
}

// For state updated in place: a never-written block reads as zeros, then is written.
template <typename P>
P* ReadWrite(const TensorRef& r) {
  r.data<P>();
  return r.mutable_data<P>();
}

// Whether the kernels take float16 per-channel operands as they are: x and every one of them
// float16. Else they take float32 ones (float32 copies of float16 ones, ToF32).
bool HalfPerChannel(const Tensor& x, std::initializer_list<const Tensor*> per_channel) {
  if (!IsHalf(x)) return false;
  for (const Tensor* t : per_channel)
    if (!IsHalf(*t)) return false;
  return true;
}

// A forward's per-channel operands as the kernels take them (pdt: float16 where x and all
// of them are, else float32 copies of float16 ones), and the blocks the forward reads.
struct ForwardOperands {
  DType pdt;
  Tensor scale, bias, running_mean, running_var;
  std::vector<BlockPtr> reads;
};

ForwardOperands KernelOperands(const Tensor& x, const Tensor& scale, const Tensor& bias,
                               const Tensor& running_mean, const Tensor& running_var,
                               const std::optional<Tensor>& residual) {
  const bool half_p = HalfPerChannel(x, {&scale, &bias, &running_mean, &running_var});
  auto per_channel = [&](const Tensor& t) { return half_p ? t : ToF32(t); };
  ForwardOperands f{half_p ? DType::kFloat16 : DType::kFloat32, per_channel(scale),
                    per_channel(bias), per_channel(running_mean), per_channel(running_var),
                    {}};
  f.reads = {x.block(), f.scale.block(), f.bias.block(), f.running_mean.block(),
             f.running_var.block()};
  if (residual) f.reads.push_back(residual->block());
  return f;
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> BatchNormForwardTraining(
    const Tensor& x, const Tensor& scale, const Tensor& bias, const Tensor& running_mean,
    const Tensor& running_var, double momentum, double eps, bool relu,
    const std::optional<Tensor>& residual) {
  const char* op = "batchnorm_forward_training";
  Dims d = CheckInput(op, x);
  CheckChannel(op, x, scale, "scale");
  CheckChannel(op, x, bias, "bias");
  CheckChannel(op, x, running_mean, "running_mean");
  CheckChannel(op, x, running_var, "running_var");
  MS_CHECK(d.n * d.s > 1, op << ": need more than one value per channel to compute a batch "
                             << "variance, got x of shape " << ShapeStr(x.shape()));
  MS_CHECK(momentum >= 0 && momentum <= 1, op << ": momentum must be in [0, 1], got "
                                              << momentum);
  CheckEps(op, eps);
  CheckResidual(op, x, residual);
  const ForwardOperands f =
      KernelOperands(x, scale, bias, running_mean, running_var, residual);
  const DType pdt = f.pdt;
  const Tensor &rm = f.running_mean, &rv = f.running_var;
  Tensor y(x.shape(), x.device(), x.dtype()), mean({d.c}, x.device()),
      inv_std({d.c}, x.device());
  const bool has_res = residual.has_value();
  const TensorRef resr = has_res ? residual->ref() : TensorRef{};
  TensorRef xr = x.ref(), sr = f.scale.ref(), br = f.bias.ref(), rmr = rm.ref(), rvr = rv.ref(),
            yr = y.ref(), mr = mean.ref(), ir = inv_std.ref();
  const float mom = static_cast<float>(momentum), e = static_cast<float>(eps);
  x.device()->Exec(
      [=](Context* ctx) {
        FloatPairSwitch(xr.dtype, pdt, [&](auto t, auto p) {
          using T = decltype(t);
          using P = decltype(p);
          MS_DISPATCH(ctx, BatchNormForwardTraining, xr.data<T>(), sr.data<P>(), br.data<P>(),
                      ReadWrite<P>(rmr), ReadWrite<P>(rvr), yr.mutable_data<T>(),
                      mr.mutable_data<float>(), ir.mutable_data<float>(), d.n, d.c, d.s, mom, e,
                      relu, has_res ? resr.data<T>() : nullptr);
        });
      },
      f.reads, {rm.block(), rv.block(), y.block(), mean.block(), inv_std.block()},
      "BatchNormForwardTraining");
  CastInto(running_mean, rm);  // nothing to do where the kernel updated it in place
  CastInto(running_var, rv);
  return {y, mean, inv_std};
}

Tensor BatchNormForwardInference(const Tensor& x, const Tensor& scale, const Tensor& bias,
                                 const Tensor& running_mean, const Tensor& running_var,
                                 double eps, bool relu,
                                 const std::optional<Tensor>& residual) {
  const char* op = "batchnorm_forward_inference";
  Dims d = CheckInput(op, x);
  CheckChannel(op, x, scale, "scale");
  CheckChannel(op, x, bias, "bias");
  CheckChannel(op, x, running_mean, "running_mean");
  CheckChannel(op, x, running_var, "running_var");
  CheckEps(op, eps);
  CheckResidual(op, x, residual);
  const ForwardOperands f =
      KernelOperands(x, scale, bias, running_mean, running_var, residual);
  const DType pdt = f.pdt;
  Tensor y(x.shape(), x.device(), x.dtype());
  const bool has_res = residual.has_value();
  const TensorRef resr = has_res ? residual->ref() : TensorRef{};
  TensorRef xr = x.ref(), sr = f.scale.ref(), br = f.bias.ref(), rmr = f.running_mean.ref(),
            rvr = f.running_var.ref(), yr = y.ref();
  const float e = static_cast<float>(eps);
  x.device()->Exec(
      [=](Context* ctx) {
        FloatPairSwitch(xr.dtype, pdt, [&](auto t, auto p) {
          using T = decltype(t);
          using P = decltype(p);
          MS_DISPATCH(ctx, BatchNormForwardInference, xr.data<T>(), sr.data<P>(), br.data<P>(),
                      rmr.data<P>(), rvr.data<P>(), yr.mutable_data<T>(), d.n, d.c, d.s, e, relu,
                      has_res ? resr.data<T>() : nullptr);
        });
      },
      f.reads, {y.block()},
      "BatchNormForwardInference");
  return y;
}

std::vector<Tensor> BatchNormBackward(const Tensor& dy, const Tensor& x, const Tensor& scale,
                                      const Tensor& saved_mean, const Tensor& saved_inv_std,
                                      const std::optional<Tensor>& y, bool residual) {
  const char* op = "batchnorm_backward";
  Dims d = CheckInput(op, x);
  CheckSameDevice(op, x, dy);
  CheckDType(op, dy, {DType::kFloat32, DType::kFloat16}, "dy");
  MS_CHECK(dy.shape() == x.shape(), op << ": dy has shape " << ShapeStr(dy.shape())
                                       << ", expected x's shape " << ShapeStr(x.shape()));
  CheckChannel(op, x, scale, "scale");
  CheckChannel(op, x, saved_mean, "saved_mean");
  CheckChannel(op, x, saved_inv_std, "saved_inv_std");
  if (y) {
    CheckSameDevice(op, x, *y);
    CheckDType(op, *y, {DType::kFloat32, DType::kFloat16}, "y");
    MS_CHECK(y->shape() == x.shape(), op << ": y has shape " << ShapeStr(y->shape())
                                         << ", expected x's shape " << ShapeStr(x.shape()));
  }
  const bool mixed = dy.dtype() != x.dtype() || (y && y->dtype() != x.dtype());
  if (mixed) {  // float16 beside float32: all in float32, dx in x's dtype
    std::optional<Tensor> y32;
    if (y) y32 = ToF32(*y);
    std::vector<Tensor> g = BatchNormBackward(ToF32(dy), ToF32(x), scale, saved_mean,
                                              saved_inv_std, y32, residual);
    g[0] = Like(g[0], x);
    if (residual) g[3] = Like(g[3], x);  // the residual has x's dtype
    return g;
  }
  // scale (and dscale, dbias) in the kernel's per-channel type; the saved statistics float32.
  const bool half_p = HalfPerChannel(x, {&scale});
  const DType pdt = half_p ? DType::kFloat16 : DType::kFloat32;  // per-channel
  const Tensor sp = half_p ? scale : ToF32(scale), m32 = ToF32(saved_mean),
               inv32 = ToF32(saved_inv_std);
  Tensor dx(x.shape(), x.device(), x.dtype()), dscale({d.c}, x.device(), sp.dtype()),
      dbias({d.c}, x.device(), sp.dtype());
  // The residual's gradient: dy itself, or (with a fused ReLU) dy masked, which the kernel writes.
  const bool write_dres = residual && y.has_value();
  Tensor dres = write_dres ? Tensor(x.shape(), x.device(), x.dtype()) : dy;
  const TensorRef drr = dres.ref();
  TensorRef dyr = dy.ref(), xr = x.ref(), sr = sp.ref(), mr = m32.ref(), ir = inv32.ref(),
            dxr = dx.ref(), dsr = dscale.ref(), dbr = dbias.ref();
  const bool has_y = y.has_value();
  const TensorRef yr = has_y ? y->ref() : TensorRef{};
  std::vector<BlockPtr> reads{dy.block(), x.block(), sp.block(), m32.block(), inv32.block()};
  if (has_y) reads.push_back(y->block());
  std::vector<BlockPtr> writes{dx.block(), dscale.block(), dbias.block()};
  if (write_dres) writes.push_back(dres.block());
  x.device()->Exec(
      [=](Context* ctx) {
        FloatPairSwitch(xr.dtype, pdt, [&](auto t, auto p) {
          using T = decltype(t);
          using P = decltype(p);
          MS_DISPATCH(ctx, BatchNormBackward, dyr.data<T>(), xr.data<T>(),
                      has_y ? yr.data<T>() : nullptr, sr.data<P>(), mr.data<float>(),
                      ir.data<float>(), dxr.mutable_data<T>(), dsr.mutable_data<P>(),
                      dbr.mutable_data<P>(), d.n, d.c, d.s,
                      write_dres ? drr.mutable_data<T>() : nullptr);
        });
      },
      reads, writes, "BatchNormBackward");
  // no cast where dscale and dbias are in scale's dtype
  std::vector<Tensor> g{dx, Like(dscale, scale), Like(dbias, scale)};
  if (residual) g.push_back(dres);
  return g;
}

}  // namespace ops
}  // namespace minisinga
