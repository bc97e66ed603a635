// CUDA GEMM through cuBLAS on the device's handle (bound to its stream). Row-major C = op(A)
// op(B) is computed as the column-major C^T = op(B)^T op(A)^T: the operands are swapped and
// each keeps its own transpose flag, so no data moves. TF32 only when the device allows it.
// float16 GEMMs are cublasGemmEx calls with float32 compute: tensor cores, C rounded once
// (or kept in float32: the mixed overloads). Single GEMMs with few output tiles and a long K
// are split along K (see SplitK).
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kernels/blas.h"
#include "kernels/cuda/util.cuh"

namespace minisinga {
namespace kernels {
namespace cuda {

namespace {

cublasOperation_t Op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

// C = beta * C for K == 0 (beta == 0 writes zeros, never reading C), `batch` matrices.
template <typename T>
__global__ void ScaleKernel(T* C, int64_t M, int64_t N, int64_t ldc, int64_t stride_c,
                            int64_t batch, float beta) {
  const int64_t mn = M * N;
  MS_CUDA_LOOP(e, batch * mn) {
    const int64_t b = e / mn, r = e % mn;
    T* c = C + b * stride_c + r / N * ldc + r % N;
    *c = cudak::DCvt<T>::Store(beta == 0.f ? 0.f : cudak::DCvt<T>::Load(*c) * beta);
  }
}

template <typename T>
void Scale(Context* ctx, T* C, int64_t M, int64_t N, int64_t ldc, int64_t stride_c,
           int64_t batch, float beta) {
  cudaStream_t s = cudak::Stream(ctx);
  ScaleKernel<<<cudak::Blocks(batch * M * N), cudak::kThreads, 0, s>>>(C, M, N, ldc, stride_c,
                                                                       batch, beta);
  MS_CUDA_LAUNCH_CHECK("ScaleKernel");
}

cublasHandle_t Handle(Context* ctx) {
  cudak::Stream(ctx);  // makes the device current
  return static_cast<cublasHandle_t>(ctx->blas);
}

// One cuBLAS strided-batched call in the column-major form (operands swapped, see above).
cublasStatus_t BatchedCall(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float* alpha, const float* A, int lda,
                           int64_t sa, const float* B, int ldb, int64_t sb, const float* beta,
                           float* C, int ldc, int64_t sc, int nb) {
  if (nb == 1) return cublasSgemm(h, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  return cublasSgemmStridedBatched(h, ta, tb, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C,
                                   ldc, sc, nb);
}
cublasStatus_t BatchedCall(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float* alpha, const half_t* A, int lda,
                           int64_t sa, const half_t* B, int ldb, int64_t sb, const float* beta,
                           half_t* C, int ldc, int64_t sc, int nb) {
  return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, CUDA_R_16F, lda, sa, B,
                                    CUDA_R_16F, ldb, sb, beta, C, CUDA_R_16F, ldc, sc, nb,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

cublasStatus_t BatchedCall(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float* alpha, const half_t* A, int lda,
                           int64_t sa, const half_t* B, int ldb, int64_t sb, const float* beta,
                           float* C, int ldc, int64_t sc, int nb) {
  return cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, alpha, A, CUDA_R_16F, lda, sa, B,
                                    CUDA_R_16F, ldb, sb, beta, C, CUDA_R_32F, ldc, sc, nb,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

// The cuBLAS calls of a strided-batched GEMM (K > 0, sizes checked).
template <typename T, typename TC>
void Calls(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
           float alpha, const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
           int64_t stride_b, float beta, TC* C, int64_t ldc, int64_t stride_c, int64_t batch) {
  cublasHandle_t h = Handle(ctx);
  // cuBLAS takes the batch count as an int: chunks of at most INT_MAX matrices.
  for (int64_t b0 = 0; b0 < batch; b0 += INT_MAX) {
    const int nb = static_cast<int>(std::min<int64_t>(INT_MAX, batch - b0));
    MS_CUBLAS_CHECK(BatchedCall(h, Op(trans_b), Op(trans_a), static_cast<int>(N),
                                static_cast<int>(M), static_cast<int>(K), &alpha,
                                B + b0 * stride_b, static_cast<int>(ldb), stride_b,
                                A + b0 * stride_a, static_cast<int>(lda), stride_a, &beta,
                                C + b0 * stride_c, static_cast<int>(ldc), stride_c, nb));
  }
}

// Split-K. A GEMM whose C has fewer tiles than the GPU has multiprocessors while K is long
// (a convolution's weight gradient: C is Cout x C*KH*KW, K is images x output pixels) would
// keep a few multiprocessors busy for the whole sum. Its K is cut into S slices instead: one
// strided-batched GEMM writes the S partial products (alpha applied) to float32 scratch, and
// SumSlicesKernel adds them in slice order (deterministic) plus beta C, rounding C once.
constexpr int64_t kTileEdge = 128;                  // a large cuBLAS SGEMM tile
constexpr int64_t kMinSlice = 512;                  // K per slice at least
constexpr int64_t kMaxPartials = int64_t{16} << 20;  // float32 partial products at most

bool SplitKEnabled() {  // $MINISINGA_GEMM_SPLIT_K=0 turns it off (for A/B timings)
  static const bool on = [] {
    const char* env = std::getenv("MINISINGA_GEMM_SPLIT_K");
    return env == nullptr || std::string(env) != "0";
  }();
  return on;
}

template <typename TC>
__global__ void SumSlicesKernel(const float* part, int64_t slices, int64_t M, int64_t N,
                                float beta, TC* C, int64_t ldc) {
  const int64_t mn = M * N;
  MS_CUDA_LOOP(e, mn) {
    float acc = part[e];
    for (int64_t j = 1; j < slices; j++) acc += part[j * mn + e];
    TC* c = C + e / N * ldc + e % N;
    if (beta != 0.f) acc += beta * cudak::DCvt<TC>::Load(*c);
    *c = cudak::DCvt<TC>::Store(acc);
  }
}

template <typename T, typename TC>
void SplitKGemm(Context* ctx, int64_t S, bool trans_a, bool trans_b, int64_t M, int64_t N,
                int64_t K, float alpha, const T* A, int64_t lda, const T* B, int64_t ldb,
                float beta, TC* C, int64_t ldc) {
  // `full` slices of ks, then the rest (shorter) in a call of its own.
  const int64_t ks = (K + S - 1) / S, full = K / ks, rest = K - full * ks;
  const int64_t slices = full + (rest > 0), mn = M * N;
  // Slice j starts at column j*ks of op(A) and row j*ks of op(B).
  const int64_t sa = trans_a ? ks * lda : ks, sb = trans_b ? ks : ks * ldb;
  cudak::Scratch scratch(ctx, sizeof(float) * slices * mn);
  float* part = scratch.as<float>();
  Calls(ctx, trans_a, trans_b, M, N, ks, alpha, A, lda, sa, B, ldb, sb, 0.f, part, N, mn, full);
  if (rest > 0)
    Calls(ctx, trans_a, trans_b, M, N, rest, alpha, A + full * sa, lda, 0, B + full * sb, ldb,
          0, 0.f, part + full * mn, N, 0, 1);
  cudaStream_t s = cudak::Stream(ctx);
  SumSlicesKernel<<<cudak::Blocks(mn), cudak::kThreads, 0, s>>>(part, slices, M, N, beta, C,
                                                                ldc);
  MS_CUDA_LAUNCH_CHECK("SumSlicesKernel");
}

template <typename T, typename TC>
void Batched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
             float alpha, const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb,
             int64_t stride_b, float beta, TC* C, int64_t ldc, int64_t stride_c, int64_t batch) {
  if (M == 0 || N == 0 || batch <= 0) return;
  if (K == 0) return Scale(ctx, C, M, N, ldc, stride_c, batch, beta);
  CheckGemmSizes("cuBLAS", M, N, K, lda, ldb, ldc);
  if (batch == 1 && ctx->gemm_split_k) {
    const int64_t S = GemmSplitK(ctx->dev, M, N, K);
    if (S > 1)
      return SplitKGemm(ctx, S, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  Calls(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
        stride_c, batch);
}

}  // namespace

int64_t GemmSplitK(const Device* dev, int64_t M, int64_t N, int64_t K) {
  const auto* gpu = dynamic_cast<const CudaGPU*>(dev);
  MS_CHECK_TYPE(gpu != nullptr, "GemmSplitK: " << dev->name() << " is not a CUDA device");
  if (!SplitKEnabled() || M <= 0 || N <= 0) return 1;
  const int64_t tiles = ((M + kTileEdge - 1) / kTileEdge) * ((N + kTileEdge - 1) / kTileEdge);
  const int64_t sms = gpu->sm_count();
  if (tiles >= sms) return 1;
  // About two tiles per multiprocessor, within the slice and scratch bounds; rather a few
  // slices less that divide K than a shorter last slice, which costs a GEMM call of its own.
  const int64_t most =
      std::min({(2 * sms + tiles - 1) / tiles, K / kMinSlice, kMaxPartials / (M * N)});
  for (int64_t S = most; S >= 2 && 2 * S >= most; S--)
    if (K % S == 0) return S;
  return most >= 2 ? most : 1;
}

void Gemm(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
          float* C, int64_t ldc) {
  Batched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const float* A, int64_t lda, int64_t stride_a,
                        const float* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  Batched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
          ldc, stride_c, batch);
}

void Gemm(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const half_t* A, int64_t lda, const half_t* B, int64_t ldb, float beta,
          half_t* C, int64_t ldc) {
  Batched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const half_t* A, int64_t lda, int64_t stride_a,
                        const half_t* B, int64_t ldb, int64_t stride_b, float beta, half_t* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  Batched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
          ldc, stride_c, batch);
}

void Gemm(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
          float alpha, const half_t* A, int64_t lda, const half_t* B, int64_t ldb, float beta,
          float* C, int64_t ldc) {
  Batched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,
                        int64_t K, float alpha, const half_t* A, int64_t lda, int64_t stride_a,
                        const half_t* B, int64_t ldb, int64_t stride_b, float beta, float* C,
                        int64_t ldc, int64_t stride_c, int64_t batch) {
  Batched(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C,
          ldc, stride_c, batch);
}

}  // namespace cuda
}  // namespace kernels
}  // namespace minisinga
