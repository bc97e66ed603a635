// CPU GEMM through OpenBLAS (scipy-openblas32: 32-bit ints, `scipy_` symbol prefix).
#include "kernels/blas.h"

#include <cblas.h>

#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/common.h"
#include "core/dispatch.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// OpenBLAS runs a GEMM of at most this many multiply-adds on one thread.
constexpr int64_t kSmallGemm = 64 * 64 * 64;
// Below this many multiply-adds a GEMM is not split over OpenMP threads.
constexpr double kSplitWork = 1 << 18;
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

inline void Sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                  float* C, int64_t ldc) {
  scipy_cblas_sgemm(CblasRowMajor, Op(ta), Op(tb), static_cast<blasint>(M),
                    static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
                    static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C,
                    static_cast<blasint>(ldc));
}

// All CPU parallelism comes from OpenMP: OpenBLAS is kept on one thread, because two thread
// pools spinning on the same cores stall each other (tiny GEMMs took milliseconds).
void BlasSingleThreaded() {
  static const bool done = [] {
    scipy_openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

}  // namespace

void Gemm(Context*, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) return ScaleC(M, N, beta, C, ldc);
  CheckGemmSizes("OpenBLAS", M, N, K, lda, ldb, ldc);
  BlasSingleThreaded();
  const int T = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (T == 1 || static_cast<double>(M) * N * K < kSplitWork) {
    Sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Split the larger output dimension in T blocks of a multiple of 16; if both are small,
  // split K and sum the partial products in a fixed order.
  if (std::max(M, N) >= 32 * T) {
    const bool by_n = N >= M;
    const int64_t D = by_n ? N : M;
    const int64_t blk = ((D + T - 1) / T + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(T)
    for (int t = 0; t < T; t++) {
      const int64_t d0 = t * blk, d1 = std::min(D, d0 + blk);
      if (d0 >= d1) continue;
      if (by_n)
        Sgemm(trans_a, trans_b, M, d1 - d0, K, alpha, A, lda, trans_b ? B + d0 * ldb : B + d0,
              ldb, beta, C + d0, ldc);
      else
        Sgemm(trans_a, trans_b, d1 - d0, N, K, alpha, trans_a ? A + d0 : A + d0 * lda, lda, B,
              ldb, beta, C + d0 * ldc, ldc);
    }
    return;
  }
  if (K < 64 * T) {
    Sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  std::vector<float> part(static_cast<size_t>(T) * M * N);
  const int64_t blk = (K + T - 1) / T;
#pragma omp parallel for schedule(static) num_threads(T)
  for (int t = 0; t < T; t++) {
    const int64_t k0 = std::min(K, t * blk), k1 = std::min(K, k0 + blk);
    Sgemm(trans_a, trans_b, M, N, k1 - k0, alpha, trans_a ? A + k0 * lda : A + k0, lda,
          trans_b ? B + k0 : B + k0 * ldb, ldb, 0.f, part.data() + t * M * N, N);
  }
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < N; j++) {
      float acc = 0.f;
      for (int t = 0; t < T; t++) acc += part[(t * M + i) * N + j];
      float& c = C[i * ldc + j];
      c = beta == 0.f ? acc : beta * c + acc;
    }
  }
}

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const float* A, int64_t lda, int64_t stride_a,
                        const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  // Small matrices are spread over OpenMP threads (Gemm then runs each on its thread); large
  // ones go one by one, each split over the threads by Gemm.
  // Before the parallel loop: nothing throws inside it.
  CheckGemmSizes("OpenBLAS", M, N, K, lda, ldb, ldc);
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

namespace {

// `batch` rows x cols matrices of row stride ld, `stride` apart (0: one matrix for all), as
// compact float32 copies; returns them and their stride (0 when shared).
std::vector<float> Widen(const half_t* p, int64_t rows, int64_t cols, int64_t ld,
                         int64_t stride, int64_t batch, int64_t* wide_stride) {
  const int64_t n = stride == 0 ? 1 : batch, mat = rows * cols;
  std::vector<float> w(static_cast<size_t>(n * mat));
#pragma omp parallel for schedule(static) if (n * mat > MS_OMP_MIN)
  for (int64_t r = 0; r < n * rows; r++) {
    const half_t* src = p + (r / rows) * stride + (r % rows) * ld;
    float* dst = w.data() + r * cols;
    for (int64_t c = 0; c < cols; c++) dst[c] = Cvt<half_t>::Load(src[c]);
  }
  *wide_stride = stride == 0 ? 0 : mat;
  return w;
}

// float16 A and B as float32 copies, C as given (float32), or the float32 result of a float16
// C (below).
void WideGemm(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
              float alpha, const half_t* A, int64_t lda, int64_t stride_a, const half_t* B,
              int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc,
              int64_t stride_c, int64_t batch) {
  int64_t sa = 0, sb = 0;
  const std::vector<float> a =
      Widen(A, trans_a ? K : M, trans_a ? M : K, lda, stride_a, batch, &sa);
  const std::vector<float> b =
      Widen(B, trans_b ? N : K, trans_b ? K : N, ldb, stride_b, batch, &sb);
  GemmStridedBatched(ctx, trans_a, trans_b, M, N, K, alpha, a.data(), trans_a ? M : K, sa,
                     b.data(), trans_b ? K : N, sb, beta, C, ldc, stride_c, batch);
}

}  // namespace

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const half_t* A, int64_t lda, int64_t stride_a,
                        const half_t* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  if (M == 0 || N == 0 || batch <= 0) return;
  WideGemm(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
           ldc, stride_c, batch);
}

void Gemm(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const half_t* A, int64_t lda, const half_t* B, int64_t ldb, float beta,
          float* C, int64_t ldc) {
  GemmStridedBatched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc,
                     0, 1);
}

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const half_t* A, int64_t lda, int64_t stride_a,
                        const half_t* B, int64_t ldb, int64_t stride_b, float beta, half_t* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  if (M == 0 || N == 0 || batch <= 0) return;
  int64_t sc = 0;
  std::vector<float> c = beta != 0.f ? Widen(C, M, N, ldc, stride_c, batch, &sc)
                                     : std::vector<float>(static_cast<size_t>(batch * M * N));
  sc = M * N;
  WideGemm(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta,
           c.data(), N, sc, batch);
#pragma omp parallel for schedule(static) if (batch * M * N > MS_OMP_MIN)
  for (int64_t r = 0; r < batch * M; r++) {
    half_t* dst = C + (r / M) * stride_c + (r % M) * ldc;
    const float* src = c.data() + r * N;
    for (int64_t j = 0; j < N; j++) dst[j] = Cvt<half_t>::Store(src[j]);
  }
}

void Gemm(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const half_t* A, int64_t lda, const half_t* B, int64_t ldb, float beta,
          half_t* C, int64_t ldc) {
  GemmStridedBatched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc,
                     0, 1);
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
