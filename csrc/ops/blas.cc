#include "ops/blas.h"

#include <algorithm>
#include <climits>
#include <sstream>
#include <vector>

#include "core/dispatch.h"
#include "kernels/blas.h"
#include "ops/elementwise.h"
#include "ops/half.h"

namespace minisinga {
namespace ops {

namespace {

void CheckFloat(const Tensor& t, const char* what) {
  MS_CHECK_TYPE(t.dtype() == DType::kFloat32 || t.dtype() == DType::kFloat16,
                "matmul: " << what << " has dtype " << DTypeName(t.dtype())
                           << "; matmul supports float32 and float16");
}

bool Overlap(const Tensor& x, const Tensor& y) {
  if (x.block() != y.block() || x.nbytes() == 0 || y.nbytes() == 0) return false;
  return x.offset() < y.offset() + y.nbytes() && y.offset() < x.offset() + x.nbytes();
}

}  // namespace

Tensor Matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, double alpha,
              double beta, std::optional<Tensor> out) {
  auto desc = [&] {
    std::ostringstream os;
    os << "a " << ShapeStr(a.shape()) << (trans_a ? " (transposed)" : "") << " and b "
       << ShapeStr(b.shape()) << (trans_b ? " (transposed)" : "");
    return os.str();
  };
  CheckSameDevice("matmul", a, b);
  CheckFloat(a, "a");
  CheckFloat(b, "b");
  if (out) CheckFloat(*out, "out");
  // All float16: float16 GEMMs (float32 arithmetic, kernels/blas.h). Mixed float16 and
  // float32: the float32 GEMM on float32 copies, a float16 result (ops/half.h).
  const DType dt = a.dtype();
  if (b.dtype() != dt || (out && out->dtype() != dt)) {
    Tensor c = Matmul(ToF32(a), ToF32(b), trans_a, trans_b, alpha, beta, ToF32(out));
    if (!out) return ToHalf(c);
    CastInto(*out, c);
    return *out;
  }
  MS_CHECK(a.ndim() >= 1 && b.ndim() >= 1,
           "matmul: operands need at least 1 dimension, got " << desc());
  MS_CHECK(!(trans_a && a.ndim() == 1), "matmul: trans_a needs a matrix, got " << desc());
  MS_CHECK(!(trans_b && b.ndim() == 1), "matmul: trans_b needs a matrix, got " << desc());

  // Stored matrix sizes (a 1-d a is a row, a 1-d b a column), then op() sizes.
  const int64_t ra = a.ndim() == 1 ? 1 : a.shape(-2), ca = a.shape(-1);
  const int64_t rb = b.ndim() == 1 ? b.shape(0) : b.shape(-2), cb = b.ndim() == 1 ? 1 : b.shape(-1);
  const int64_t M = trans_a ? ca : ra, K = trans_a ? ra : ca;
  const int64_t Kb = trans_b ? cb : rb, N = trans_b ? rb : cb;
  MS_CHECK(K == Kb, "matmul: inner dimensions differ for " << desc() << ": op(a) is " << M << "x"
                                                           << K << ", op(b) is " << Kb << "x"
                                                           << N);

  // Batch axes broadcast like numpy.
  const Shape a_batch(a.shape().begin(), a.shape().end() - std::min(2, a.ndim()));
  const Shape b_batch(b.shape().begin(), b.shape().end() - std::min(2, b.ndim()));
  const size_t nd = std::max(a_batch.size(), b_batch.size());
  Shape batch(nd);
  for (size_t i = 0; i < nd; i++) {
    int64_t da = i < nd - a_batch.size() ? 1 : a_batch[i - (nd - a_batch.size())];
    int64_t db = i < nd - b_batch.size() ? 1 : b_batch[i - (nd - b_batch.size())];
    MS_CHECK(da == db || da == 1 || db == 1,
             "matmul: batch dimensions do not broadcast for " << desc());
    batch[i] = da == 1 ? db : da;
  }
  Shape shape = batch;
  if (a.ndim() > 1) shape.push_back(M);
  if (b.ndim() > 1) shape.push_back(N);

  MS_CHECK(beta == 0.0 || out.has_value(),
           "matmul: beta = " << beta << " accumulates into out, but no out was given");
  if (out) {
    MS_CHECK(out->shape() == shape, "matmul: out has shape " << ShapeStr(out->shape())
                                                             << ", expected " << ShapeStr(shape)
                                                             << " for " << desc());
    MS_CHECK_TYPE(out->device() == a.device(), "matmul: out is on " << out->device()->name()
                                                                    << ", expected "
                                                                    << a.device()->name());
    MS_CHECK(!Overlap(*out, a) && !Overlap(*out, b),
             "matmul: out shares memory with an input; pass a separate tensor");
  }
  Tensor c = out ? *out : Tensor(shape, a.device(), dt);
  const int64_t nbatch = Numel(batch);
  if (nbatch == 0 || M == 0 || N == 0) return c;

  const int64_t lda = std::max<int64_t>(1, ca), ldb = std::max<int64_t>(1, cb);
  const int64_t ldc = N;
  const float fa = static_cast<float>(alpha), fb = static_cast<float>(beta);
  TensorRef ar = a.ref(), br = b.ref(), cr = c.ref();
  // C is read only when accumulating (beta == 0 never reads it).
  std::vector<BlockPtr> reads{a.block(), b.block()};
  if (beta != 0.0) reads.push_back(c.block());

  // b shared by the whole batch and a not transposed: one GEMM over all rows of a.
  if (Numel(b_batch) == 1 && Numel(a_batch) == nbatch && !trans_a && nbatch * M <= INT_MAX) {
    const int64_t rows = nbatch * M;
    a.device()->Exec(
        [=](Context* ctx) {
          FloatSwitch(dt, [&](auto tag) {
            using T = decltype(tag);
            MS_DISPATCH(ctx, Gemm, false, trans_b, rows, N, K, fa, ar.data<T>(), lda,
                        br.data<T>(), ldb, fb, cr.mutable_data<T>(), ldc);
          });
        },
        reads, {c.block()}, "Matmul");
    return c;
  }

  // Otherwise strided-batched GEMMs along the innermost merged batch axis, looping over the
  // rest (one call when the batch axes merge into one, e.g. both operands fully batched).
  const StridedPlan plan = MakePlan(batch, {a_batch, b_batch}, "matmul");
  const int64_t mat_a = ra * ca, mat_b = rb * cb, mat_c = M * N;
  a.device()->Exec(
      [=](Context* ctx) {
        FloatSwitch(dt, [&](auto tag) {
          using T = decltype(tag);
          const int last = plan.ndim - 1;
          const int64_t inner = plan.shape[last];
          const T* A = ar.data<T>();
          const T* B = br.data<T>();
          T* C = cr.mutable_data<T>();
          for (int64_t row = 0; row < plan.numel / inner; row++) {
            int64_t oa = 0, ob = 0, r = row;
            for (int d = last - 1; d >= 0; d--) {
              const int64_t i = r % plan.shape[d];
              r /= plan.shape[d];
              oa += i * plan.stride[0][d];
              ob += i * plan.stride[1][d];
            }
            MS_DISPATCH(ctx, GemmStridedBatched, trans_a, trans_b, M, N, K, fa, A + oa * mat_a,
                        lda, plan.stride[0][last] * mat_a, B + ob * mat_b, ldb,
                        plan.stride[1][last] * mat_b, fb, C + row * inner * mat_c, ldc, mat_c,
                        inner);
          }
        });
      },
      reads, {c.block()}, "Matmul");
  return c;
}

}  // namespace ops
}  // namespace minisinga
