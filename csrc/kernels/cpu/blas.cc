// CPU GEMM through OpenBLAS (scipy-openblas32: 32-bit ints, `scipy_` symbol prefix).
#include "kernels/blas.h"

#include <cblas.h>

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

void CheckSizes(int64_t M, int64_t N, int64_t K, int64_t lda, int64_t ldb, int64_t ldc) {
  CheckInt("M", M), CheckInt("N", N), CheckInt("K", K);
  CheckInt("lda", lda), CheckInt("ldb", ldb), CheckInt("ldc", ldc);
}

// OpenBLAS runs a GEMM of at most this many multiply-adds on one thread.
constexpr int64_t kSmallGemm = 64 * 64 * 64;
// Batches with less total work than this stay on one thread.
constexpr int64_t kParallelWork = 1 << 21;

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
  CheckSizes(M, N, K, lda, ldb, ldc);
  scipy_cblas_sgemm(CblasRowMajor, Op(trans_a), Op(trans_b), static_cast<blasint>(M),
                    static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
                    static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
                    static_cast<blasint>(ldc));
}

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const float* A, int64_t lda, int64_t stride_a,
                        const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  // OpenBLAS's own sgemm_batch_strided stalls for tens of ms on a busy machine (its thread
  // pool waits on descheduled workers), so: small matrices (which OpenBLAS runs on the calling
  // thread) are spread over OpenMP threads; large ones go one by one, each threaded by OpenBLAS.
  CheckSizes(M, N, K, lda, ldb, ldc);  // before the parallel loop: nothing throws inside it
  const int64_t work = M * N * K;
  if (work <= kSmallGemm) {
#pragma omp parallel for schedule(static) if (batch * work > kParallelWork)
    for (int64_t i = 0; i < batch; i++)
      Gemm(ctx, trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb,
           beta, C + i * stride_c, ldc);
  } else {
    for (int64_t i = 0; i < batch; i++)
      Gemm(ctx, trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb,
           beta, C + i * stride_c, ldc);
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
