#include "bind/bind.h"
#include "ops/blas.h"
#ifdef MS_WITH_CUDA
#include "kernels/blas.h"
#endif

namespace minisinga {

void InitBlas(py::module_& m) {
  m.def("matmul", &ops::Matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("out") = py::none());
#ifdef MS_WITH_CUDA
  // For tests: the K slices of a single CUDA GEMM of this size (kernels/cuda/blas.cu).
  m.def("_gemm_split_k", [](const Device& dev, int64_t M, int64_t N, int64_t K) {
    return kernels::cuda::GemmSplitK(&dev, M, N, K);
  });
#endif
}

}  // namespace minisinga
