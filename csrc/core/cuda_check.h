// Error checks for CUDA runtime and cuBLAS calls (CUDA translation units only): a failing
// call throws minisinga::RuntimeError naming the call and the error; never exit/abort.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/common.h"

namespace minisinga {

inline const char* CublasStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    default: return "unknown cuBLAS status";
  }
}

}  // namespace minisinga

// The error is cleared (cudaGetLastError) before throwing, so that a recoverable failure
// (an out-of-memory, an invalid argument) does not poison the next check.
#define MS_CUDA_CHECK(call)                                                                   \
  do {                                                                                        \
    const cudaError_t ms_err_ = (call);                                                       \
    if (ms_err_ != cudaSuccess) {                                                             \
      (void)cudaGetLastError();                                                               \
      MS_THROW_(RuntimeError, "CUDA error in " << #call << ": " << cudaGetErrorName(ms_err_) \
                                               << " (" << cudaGetErrorString(ms_err_) << ")"); \
    }                                                                                         \
  } while (0)

#define MS_CUBLAS_CHECK(call)                                                        \
  do {                                                                               \
    const cublasStatus_t ms_st_ = (call);                                            \
    if (ms_st_ != CUBLAS_STATUS_SUCCESS)                                             \
      MS_THROW_(RuntimeError, "cuBLAS error in " << #call << ": "                    \
                                                 << ::minisinga::CublasStatusName(ms_st_)); \
  } while (0)

// After a kernel launch: configuration errors and, in debug runs, earlier async faults.
#define MS_CUDA_LAUNCH_CHECK(kernel)                                                      \
  do {                                                                                    \
    const cudaError_t ms_err_ = cudaGetLastError();                                       \
    if (ms_err_ != cudaSuccess)                                                           \
      MS_THROW_(RuntimeError, "CUDA error launching " << kernel << ": "                   \
                                                      << cudaGetErrorName(ms_err_) << " (" \
                                                      << cudaGetErrorString(ms_err_) << ")"); \
  } while (0)
