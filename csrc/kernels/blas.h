// BLAS family: row-major GEMM, single and strided-batched, float32 or float16.
// Device-agnostic entry points reused by other families (convolution's im2col GEMM); CPU uses
// OpenBLAS, CUDA cuBLAS.
//
// Gemm: C = alpha * op(A) * op(B) + beta * C with row-major storage; op(A) is M x K (A is
//   stored K x M when trans_a), op(B) is K x N (B is stored N x K when trans_b), C is M x N;
//   lda/ldb/ldc are the row strides (elements) of the stored matrices. beta == 0 never reads
//   C (it may hold garbage or NaN); K == 0 gives C = beta * C. Sizes must fit in 32 bits.
// GemmStridedBatched: `batch` independent GEMMs; matrix i uses A + i * stride_a,
//   B + i * stride_b and C + i * stride_c (elements). stride_a or stride_b may be 0 to
//   broadcast one operand over the batch; the C matrices must not overlap.
// The float16 overloads: products and sums in float32 (tensor cores on CUDA, float32 copies
//   through OpenBLAS on the CPU), alpha and beta applied in float32, C rounded once; the
//   mixed ones (float16 A and B, float32 C) keep C in float32, for sums over several calls.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {
namespace kernels {

// Every size and leading dimension must fit the 32-bit ints of `iface` (OpenBLAS, cuBLAS).
inline void CheckGemmSizes(const char* iface, int64_t M, int64_t N, int64_t K, int64_t lda,
                           int64_t ldb, int64_t ldc) {
  const char* names[] = {"M", "N", "K", "lda", "ldb", "ldc"};
  const int64_t vals[] = {M, N, K, lda, ldb, ldc};
  for (int i = 0; i < 6; i++)
    MS_CHECK(vals[i] >= 0 && vals[i] <= INT32_MAX,
             "gemm: " << names[i] << " = " << vals[i] << " does not fit the 32-bit " << iface
                      << " interface");
}

// Declared once for both namespaces (cpu, cuda), for the operand types (AB, C) = (float,
// float), (half_t, half_t), (half_t, float).
#define MS_GEMM_KERNELS(AB, C_)                                                               \
  void Gemm(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,       \
            float alpha, const AB* A, int64_t lda, const AB* B, int64_t ldb, float beta,     \
            C_* C, int64_t ldc);                                                             \
  void GemmStridedBatched(Context* ctx, bool trans_a, bool trans_b, int64_t M, int64_t N,    \
                          int64_t K, float alpha, const AB* A, int64_t lda, int64_t stride_a, \
                          const AB* B, int64_t ldb, int64_t stride_b, float beta, C_* C,     \
                          int64_t ldc, int64_t stride_c, int64_t batch);

namespace cpu {
MS_GEMM_KERNELS(float, float)
MS_GEMM_KERNELS(half_t, half_t)
MS_GEMM_KERNELS(half_t, float)
}  // namespace cpu
namespace cuda {
// Slices of K a single CUDA GEMM of this size is split into (1: not split); see blas.cu.
int64_t GemmSplitK(const Device* dev, int64_t M, int64_t N, int64_t K);
MS_GEMM_KERNELS(float, float)
MS_GEMM_KERNELS(half_t, half_t)
MS_GEMM_KERNELS(half_t, float)
}  // namespace cuda
#undef MS_GEMM_KERNELS

}  // namespace kernels
}  // namespace minisinga
