// CPU GEMM through OpenBLAS (scipy-openblas32: 32-bit ints, `scipy_` symbol prefix).
#include "kernels/blas.h"

#include <cblas.h>

#include <algorithm>
#include <climits>

#include "core/common.h"
#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

void CheckInt(const char* what, int64_t v) {
  MS_CHECK(v >= 0 && v <= INT_MAX, "gemm: " << what << " = " << v
                                            << " does not fit the 32-bit OpenBLAS interface");
}

CBLAS_TRANSPOSE Op(bool t) { return t ? CblasTrans : CblasNoTrans; }

// C = beta * C for the K == 0 case (BLAS implementations differ on it); beta 0 writes zeros.
void ScaleC(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
#pragma omp parallel for schedule(static) if (M * N > MS_OMP_MIN)
  for (int64_t i = 0; i < M; i++) {
    float* c = C + i * ldc;
    if (beta == 0.f) {
      for (int64_t j = 0; j < N; j++) c[j] = 0.f;
    } else {
      for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
  }
}

}  // namespace

void Gemm(Context*, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return ScaleC(M, N, beta, C, ldc);
  CheckInt("M", M), CheckInt("N", N), CheckInt("K", K);
  CheckInt("lda", lda), CheckInt("ldb", ldb), CheckInt("ldc", ldc);
  scipy_cblas_sgemm(CblasRowMajor, Op(trans_a), Op(trans_b), static_cast<blasint>(M),
                    static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
                    static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
                    static_cast<blasint>(ldc));
}

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const float* A, int64_t lda, int64_t stride_a,
                        const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  if (batch == 0 || M == 0 || N == 0) return;
  if (batch == 1)
    return Gemm(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (K == 0) {
    for (int64_t i = 0; i < batch; i++) ScaleC(M, N, beta, C + i * stride_c, ldc);
    return;
  }
  CheckInt("M", M), CheckInt("N", N), CheckInt("K", K);
  CheckInt("lda", lda), CheckInt("ldb", ldb), CheckInt("ldc", ldc);
  CheckInt("stride_a", stride_a), CheckInt("stride_b", stride_b), CheckInt("stride_c", stride_c);
  // OpenBLAS indexes the batch with 32-bit ints: keep i * stride below INT_MAX per call.
  const int64_t smax = std::max({stride_a, stride_b, stride_c, int64_t{1}});
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(INT_MAX, INT_MAX / smax));
  for (int64_t b0 = 0; b0 < batch; b0 += chunk) {
    const int64_t nb = std::min(chunk, batch - b0);
    scipy_cblas_sgemm_batch_strided(
        CblasRowMajor, Op(trans_a), Op(trans_b), static_cast<blasint>(M),
        static_cast<blasint>(N), static_cast<blasint>(K), alpha, A + b0 * stride_a,
        static_cast<blasint>(lda), static_cast<blasint>(stride_a), B + b0 * stride_b,
        static_cast<blasint>(ldb), static_cast<blasint>(stride_b), beta, C + b0 * stride_c,
        static_cast<blasint>(ldc), static_cast<blasint>(stride_c), static_cast<blasint>(nb));
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
