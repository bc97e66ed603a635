#include "bind/bind.h"
#include "ops/blas.h"

namespace minisinga {

void InitBlas(py::module_& m) {
  m.def("matmul", &ops::Matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false,
        py::arg("trans_b") = false, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("out") = py::none());
}

}  // namespace minisinga
