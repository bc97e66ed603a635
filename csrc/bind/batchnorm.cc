#include "bind/bind.h"
#include "ops/batchnorm.h"

namespace minisinga {

void InitBatchNorm(py::module_& m) {
  m.def("batchnorm_forward_training", &ops::BatchNormForwardTraining, py::arg("x"),
        py::arg("scale"), py::arg("bias"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("momentum") = 0.1, py::arg("eps") = 1e-5, py::arg("relu") = false,
        py::arg("residual") = py::none());
  m.def("batchnorm_forward_inference", &ops::BatchNormForwardInference, py::arg("x"),
        py::arg("scale"), py::arg("bias"), py::arg("running_mean"), py::arg("running_var"),
        py::arg("eps") = 1e-5, py::arg("relu") = false, py::arg("residual") = py::none());
  m.def("batchnorm_backward", &ops::BatchNormBackward, py::arg("dy"), py::arg("x"),
        py::arg("scale"), py::arg("saved_mean"), py::arg("saved_inv_std"),
        py::arg("y") = py::none(), py::arg("residual") = false);
}

}  // namespace minisinga
