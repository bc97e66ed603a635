#include "ops/select.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <memory>

#include "core/dispatch.h"
#include "kernels/select.h"

namespace minisinga {
namespace ops {

Tensor SelectSparse(const Tensor& v, double spars, bool topk) {
  const char* op = "select_sparse";
  CheckDType(op, v, {DType::kFloat32}, "v");
  MS_CHECK(!v.device()->graph_enabled(),
           op << ": how many entries are selected depends on the data; call it outside graph "
                 "recording");
  if (topk)
    MS_CHECK(spars > 0 && spars <= 1, op << ": the top-k fraction must be in (0, 1], got "
                                         << spars);
  else
    MS_CHECK(std::isfinite(spars) && spars >= 0,
             op << ": the threshold must be finite and >= 0, got " << spars);
  const int64_t n = v.numel();
  MS_CHECK(n < INT_MAX, op << ": " << n << " entries do not fit int32 indices");
  Tensor idx({n}, v.device(), DType::kInt32);
  if (n == 0) return idx;
  auto count = std::make_shared<int64_t>(0);
  TensorRef vr = v.ref(), ir = idx.ref();
  v.device()->Exec(
      [=](Context* ctx) {
        const float* p = vr.data<float>();
        float t = static_cast<float>(spars);
        int64_t limit = n;  // threshold: every tie (|v| == spars) too
        if (topk) {
          const int64_t k = std::clamp<int64_t>(
              static_cast<int64_t>(std::ceil(spars * static_cast<double>(n))), 1, n);
          t = MS_DISPATCH(ctx, KthLargestAbs, p, n, k);
          limit = t > 0 ? k : 0;  // fewer than k nonzero: send just those
        }
        *count = MS_DISPATCH(ctx, SelectAbs, p, n, t, limit, ir.mutable_data<int32_t>());
      },
      {v.block()}, {idx.block()}, "SelectSparse");
  return idx.SliceRows(0, *count);
}

}  // namespace ops
}  // namespace minisinga
