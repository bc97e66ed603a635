#include "ops/optim.h"

#include <cmath>
#include <initializer_list>
#include <optional>
#include <vector>

#include "core/dispatch.h"
#include "kernels/optim.h"
#include "ops/half.h"

namespace minisinga {
namespace ops {

// param, grad and the states are float32 or float16. Where they all share one dtype, or the
// parameter and its gradient are float16 and the states float32 (minisinga.opt's choice),
// the kernels update them in place (float16: float32 arithmetic, each result rounded once;
// kernels/optim.h). Other mixes run the update on float32 copies and cast the results back
// (ops/half.h). lr and step are float32.

namespace {

void CheckParam(const char* op, const Tensor& param) { CheckFloat(op, param, "param"); }

// A tensor updated alongside param: float32 or float16, same device, same shape.
void CheckLike(const char* op, const Tensor& param, const Tensor& t, const char* what) {
  CheckSameDevice(op, param, t);
  CheckFloat(op, t, what);
  MS_CHECK(t.shape() == param.shape(), op << ": " << what << " has shape "
                                          << ShapeStr(t.shape()) << ", expected param's shape "
                                          << ShapeStr(param.shape()));
}

// lr / step: a 1-element float32 tensor on param's device.
void CheckScalar(const char* op, const Tensor& param, const Tensor& t, const char* what) {
  CheckSameDevice(op, param, t);
  CheckDType(op, t, {DType::kFloat32}, what);
  MS_CHECK(t.numel() == 1, op << ": " << what << " must be a 1-element tensor, got shape "
                              << ShapeStr(t.shape()));
}

// hyper: a float32 tensor of `count` values (named in `names`) on param's device. Returns its
// data pointer's source (null without hyper) and adds its block to `reads`.
TensorRef CheckHyper(const char* op, const Tensor& param, const std::optional<Tensor>& hyper,
                     int64_t count, const char* names, std::vector<BlockPtr>* reads) {
  if (!hyper) return TensorRef();
  CheckSameDevice(op, param, *hyper);
  CheckDType(op, *hyper, {DType::kFloat32}, "hyper");
  MS_CHECK(hyper->numel() == count, op << ": hyper must hold " << count << " values (" << names
                                       << "), got shape " << ShapeStr(hyper->shape()));
  reads->push_back(hyper->block());
  return hyper->ref();
}

// The device pointer of CheckHyper's result, or null.
const float* HyperData(const TensorRef& r) {
  return r.block ? r.data<float>() : nullptr;
}

void CheckRange(const char* op, const char* what, double v, double lo, double hi) {
  MS_CHECK(v >= lo && v <= hi, op << ": " << what << " must be in [" << lo << ", " << hi
                                  << "], got " << v);
}

void CheckCommon(const char* op, const Tensor& param, const Tensor& grad, const Tensor& lr,
                 double weight_decay) {
  CheckParam(op, param);
  CheckLike(op, param, grad, "grad");
  CheckScalar(op, param, lr, "lr");
  MS_CHECK(weight_decay >= 0 && std::isfinite(weight_decay),
           op << ": weight_decay must be finite and >= 0, got " << weight_decay);
}

void CheckEps(const char* op, double eps) {
  MS_CHECK(eps >= 0 && std::isfinite(eps), op << ": eps must be finite and >= 0, got " << eps);
}

// State updated in place: a never-written block reads as zeros, then is written.
template <typename T>
T* ReadWrite(const TensorRef& r) {
  r.data<T>();
  return r.mutable_data<T>();
}

// The state dtype the kernels take beside param's: every state tensor's (param's where there
// is none), where grad has param's dtype and the pair is one the kernels have: (float32,
// float32), (float16, float16) or (float16, float32). None: the update runs on float32 copies.
std::optional<DType> StateDType(const Tensor& param, const Tensor& grad,
                                std::initializer_list<const Tensor*> states) {
  if (grad.dtype() != param.dtype()) return std::nullopt;
  const DType s = states.size() ? (*states.begin())->dtype() : param.dtype();
  for (const Tensor* t : states)
    if (t->dtype() != s) return std::nullopt;
  if (param.dtype() == DType::kFloat32 && s != DType::kFloat32) return std::nullopt;
  return s;
}

}  // namespace

void SgdUpdate(const Tensor& param, const Tensor& grad, const Tensor& lr,
               std::optional<Tensor> momentum_buf, double momentum, double dampening,
               double weight_decay, bool nesterov, std::optional<Tensor> step,
               std::optional<Tensor> hyper) {
  const char* op = "sgd_update";
  CheckCommon(op, param, grad, lr, weight_decay);
  MS_CHECK(momentum >= 0 && std::isfinite(momentum),
           op << ": momentum must be finite and >= 0, got " << momentum);
  CheckRange(op, "dampening", dampening, 0, 1);
  MS_CHECK(!nesterov || (momentum > 0 && dampening == 0),
           op << ": nesterov needs momentum > 0 and dampening == 0, got momentum " << momentum
              << " and dampening " << dampening);
  const bool use_buf = momentum != 0;
  MS_CHECK(!use_buf || momentum_buf.has_value(),
           op << ": momentum " << momentum << " needs a momentum_buf tensor, got None");
  std::vector<BlockPtr> reads{param.block(), grad.block(), lr.block()};
  std::vector<BlockPtr> writes{param.block()};
  const TensorRef hr =
      CheckHyper(op, param, hyper, 3, "momentum, dampening, weight_decay", &reads);
  TensorRef br, sr;
  bool has_step = false;
  if (use_buf) {
    CheckLike(op, param, *momentum_buf, "momentum_buf");
    br = momentum_buf->ref();
    reads.push_back(momentum_buf->block());
    writes.push_back(momentum_buf->block());
    if (step) {
      CheckScalar(op, param, *step, "step");
      sr = step->ref();
      has_step = true;
      reads.push_back(step->block());
    }
  }
  const std::optional<DType> sdt =
      use_buf ? StateDType(param, grad, {&*momentum_buf}) : StateDType(param, grad, {});
  if (!sdt) {
    Tensor p = ToF32(param);
    std::optional<Tensor> buf = use_buf ? ToF32(momentum_buf) : std::nullopt;
    SgdUpdate(p, ToF32(grad), lr, buf, momentum, dampening, weight_decay, nesterov, step,
              hyper);
    CastInto(param, p);  // nothing to do where it was float32
    if (buf) CastInto(*momentum_buf, *buf);
    return;
  }
  TensorRef pr = param.ref(), gr = grad.ref(), lr_r = lr.ref();
  const float mom = static_cast<float>(momentum), damp = static_cast<float>(dampening),
              wd = static_cast<float>(weight_decay);
  param.device()->Exec(
      [=](Context* ctx) {
        FloatPairSwitch(pr.dtype, *sdt, [&](auto t, auto st) {
          using T = decltype(t);
          using S = decltype(st);
          MS_DISPATCH(ctx, SgdUpdate, ReadWrite<T>(pr), gr.data<T>(),
                      use_buf ? ReadWrite<S>(br) : static_cast<S*>(nullptr), lr_r.data<float>(),
                      has_step ? sr.data<float>() : nullptr, pr.numel(), mom, damp, wd,
                      nesterov, HyperData(hr));
        });
      },
      reads, writes, "SgdUpdate");
}

void AdamUpdate(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const Tensor& lr, const Tensor& step, double beta1, double beta2, double eps,
                double weight_decay, std::optional<Tensor> hyper) {
  const char* op = "adam_update";
  CheckCommon(op, param, grad, lr, weight_decay);
  CheckLike(op, param, m, "m");
  CheckLike(op, param, v, "v");
  CheckScalar(op, param, step, "step");
  MS_CHECK(beta1 >= 0 && beta1 < 1, op << ": beta1 must be in [0, 1), got " << beta1);
  MS_CHECK(beta2 >= 0 && beta2 < 1, op << ": beta2 must be in [0, 1), got " << beta2);
  CheckEps(op, eps);
  const std::optional<DType> sdt = StateDType(param, grad, {&m, &v});
  if (!sdt) {
    Tensor p = ToF32(param), m32 = ToF32(m), v32 = ToF32(v);
    AdamUpdate(p, ToF32(grad), m32, v32, lr, step, beta1, beta2, eps, weight_decay, hyper);
    CastInto(param, p);  // nothing to do where it was float32
    CastInto(m, m32);
    CastInto(v, v32);
    return;
  }
  std::vector<BlockPtr> reads{param.block(), grad.block(), m.block(), v.block(), lr.block(),
                              step.block()};
  const TensorRef hr =
      CheckHyper(op, param, hyper, 4, "beta1, beta2, eps, weight_decay", &reads);
  TensorRef pr = param.ref(), gr = grad.ref(), mr = m.ref(), vr = v.ref(), lr_r = lr.ref(),
            sr = step.ref();
  const float b1 = static_cast<float>(beta1), b2 = static_cast<float>(beta2),
              e = static_cast<float>(eps), wd = static_cast<float>(weight_decay);
  param.device()->Exec(
      [=](Context* ctx) {
        FloatPairSwitch(pr.dtype, *sdt, [&](auto t, auto st) {
          using T = decltype(t);
          using S = decltype(st);
          MS_DISPATCH(ctx, AdamUpdate, ReadWrite<T>(pr), gr.data<T>(), ReadWrite<S>(mr),
                      ReadWrite<S>(vr), lr_r.data<float>(), sr.data<float>(), pr.numel(), b1,
                      b2, e, wd, HyperData(hr));
        });
      },
      reads, {param.block(), m.block(), v.block()}, "AdamUpdate");
}

void AdagradUpdate(const Tensor& param, const Tensor& grad, const Tensor& sum_sq,
                   const Tensor& lr, double eps, double weight_decay,
                   std::optional<Tensor> hyper) {
  const char* op = "adagrad_update";
  CheckCommon(op, param, grad, lr, weight_decay);
  CheckLike(op, param, sum_sq, "sum_sq");
  CheckEps(op, eps);
  const std::optional<DType> sdt = StateDType(param, grad, {&sum_sq});
  if (!sdt) {
    Tensor p = ToF32(param), s = ToF32(sum_sq);
    AdagradUpdate(p, ToF32(grad), s, lr, eps, weight_decay, hyper);
    CastInto(param, p);  // nothing to do where it was float32
    CastInto(sum_sq, s);
    return;
  }
  std::vector<BlockPtr> reads{param.block(), grad.block(), sum_sq.block(), lr.block()};
  const TensorRef hr = CheckHyper(op, param, hyper, 2, "eps, weight_decay", &reads);
  TensorRef pr = param.ref(), gr = grad.ref(), sr = sum_sq.ref(), lr_r = lr.ref();
  const float e = static_cast<float>(eps), wd = static_cast<float>(weight_decay);
  param.device()->Exec(
      [=](Context* ctx) {
        FloatPairSwitch(pr.dtype, *sdt, [&](auto t, auto st) {
          using T = decltype(t);
          using S = decltype(st);
          MS_DISPATCH(ctx, AdagradUpdate, ReadWrite<T>(pr), gr.data<T>(), ReadWrite<S>(sr),
                      lr_r.data<float>(), pr.numel(), e, wd, HyperData(hr));
        });
      },
      reads, {param.block(), sum_sq.block()}, "AdagradUpdate");
}

void RmspropUpdate(const Tensor& param, const Tensor& grad, const Tensor& sq_avg,
                   const Tensor& lr, double rho, double eps, double weight_decay,
                   std::optional<Tensor> hyper) {
  const char* op = "rmsprop_update";
  CheckCommon(op, param, grad, lr, weight_decay);
  CheckLike(op, param, sq_avg, "sq_avg");
  CheckRange(op, "rho", rho, 0, 1);
  CheckEps(op, eps);
  const std::optional<DType> sdt = StateDType(param, grad, {&sq_avg});
  if (!sdt) {
    Tensor p = ToF32(param), s = ToF32(sq_avg);
    RmspropUpdate(p, ToF32(grad), s, lr, rho, eps, weight_decay, hyper);
    CastInto(param, p);  // nothing to do where it was float32
    CastInto(sq_avg, s);
    return;
  }
  std::vector<BlockPtr> reads{param.block(), grad.block(), sq_avg.block(), lr.block()};
  const TensorRef hr = CheckHyper(op, param, hyper, 3, "rho, eps, weight_decay", &reads);
  TensorRef pr = param.ref(), gr = grad.ref(), sr = sq_avg.ref(), lr_r = lr.ref();
  const float r = static_cast<float>(rho), e = static_cast<float>(eps),
              wd = static_cast<float>(weight_decay);
  param.device()->Exec(
      [=](Context* ctx) {
        FloatPairSwitch(pr.dtype, *sdt, [&](auto t, auto st) {
          using T = decltype(t);
          using S = decltype(st);
          MS_DISPATCH(ctx, RmspropUpdate, ReadWrite<T>(pr), gr.data<T>(), ReadWrite<S>(sr),
                      lr_r.data<float>(), pr.numel(), r, e, wd, HyperData(hr));
        });
      },
      reads, {param.block(), sq_avg.block()}, "RmspropUpdate");
}

}  // namespace ops
}  // namespace minisinga
