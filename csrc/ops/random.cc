#include "ops/random.h"

#include <cmath>

#include "core/dispatch.h"
#include "kernels/philox.h"
#include "kernels/random.h"

namespace minisinga {
namespace ops {

void Uniform(const Tensor& t, double low, double high) {
  CheckDType("uniform", t, {DType::kFloat32, DType::kFloat16});
  MS_CHECK(low <= high, "uniform: low (" << low << ") must not exceed high (" << high << ")");
  const float lo = static_cast<float>(low), hi = static_cast<float>(high);
  MS_CHECK(std::isfinite(hi - lo), "uniform: [" << low << ", " << high
                                                << ") is not a finite float32 range");
  TensorRef r = t.ref();
  DType dt = t.dtype();
  t.device()->Exec(
      [=](Context* ctx) {
        const uint64_t off = ctx->TakeRng(r.numel());
        MS_DISPATCH(ctx, Uniform, dt, r.mutable_data<char>(), r.numel(), ctx->seed, off, lo, hi);
      },
      {}, {t.block(), t.device()->rng_block()}, "Uniform");
}

void Gaussian(const Tensor& t, double mean, double std) {
  CheckDType("gaussian", t, {DType::kFloat32, DType::kFloat16});
  MS_CHECK(std >= 0, "gaussian: std must be >= 0, got " << std);
  const float m = static_cast<float>(mean), s = static_cast<float>(std);
  MS_CHECK(std::isfinite(m) && std::isfinite(s),
           "gaussian: mean (" << mean << ") and std (" << std << ") must be finite float32");
  TensorRef r = t.ref();
  DType dt = t.dtype();
  t.device()->Exec(
      [=](Context* ctx) {
        const uint64_t off = ctx->TakeRng(r.numel());
        MS_DISPATCH(ctx, Gaussian, dt, r.mutable_data<char>(), r.numel(), ctx->seed, off, m, s);
      },
      {}, {t.block(), t.device()->rng_block()}, "Gaussian");
}

void Bernoulli(const Tensor& t, double p) {
  CheckDType("bernoulli", t, {DType::kFloat32, DType::kFloat16, DType::kInt32});
  MS_CHECK(p >= 0 && p <= 1, "bernoulli: p must be in [0, 1], got " << p);
  TensorRef r = t.ref();
  DType dt = t.dtype();
  const uint64_t thr = philox::BernoulliThreshold(p);
  t.device()->Exec(
      [=](Context* ctx) {
        const uint64_t off = ctx->TakeRng(r.numel());
        MS_DISPATCH(ctx, Bernoulli, dt, r.mutable_data<char>(), r.numel(), ctx->seed, off, thr);
      },
      {}, {t.block(), t.device()->rng_block()}, "Bernoulli");
}

std::array<uint32_t, 4> Philox4x32_10(const std::array<uint32_t, 4>& counter,
                                      const std::array<uint32_t, 2>& key) {
  philox::U32x4 c{{counter[0], counter[1], counter[2], counter[3]}};
  philox::U32x4 o = philox::Philox4x32_10(c, key[0], key[1]);
  return {o.v[0], o.v[1], o.v[2], o.v[3]};
}

}  // namespace ops
}  // namespace minisinga
