#include "bind/bind.h"
#include "ops/optim.h"

namespace minisinga {

void InitOptim(py::module_& m) {
  m.def("sgd_update", &ops::SgdUpdate, py::arg("param"), py::arg("grad"), py::arg("lr"),
        py::arg("momentum_buf") = py::none(), py::arg("momentum") = 0.0,
        py::arg("dampening") = 0.0, py::arg("weight_decay") = 0.0, py::arg("nesterov") = false,
        py::arg("step") = py::none(), py::arg("hyper") = py::none());
  m.def("adam_update", &ops::AdamUpdate, py::arg("param"), py::arg("grad"), py::arg("m"),
        py::arg("v"), py::arg("lr"), py::arg("step"), py::arg("beta1") = 0.9,
        py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
        py::arg("hyper") = py::none());
  m.def("adagrad_update", &ops::AdagradUpdate, py::arg("param"), py::arg("grad"),
        py::arg("sum_sq"), py::arg("lr"), py::arg("eps") = 1e-10,
        py::arg("weight_decay") = 0.0, py::arg("hyper") = py::none());
  m.def("rmsprop_update", &ops::RmspropUpdate, py::arg("param"), py::arg("grad"),
        py::arg("sq_avg"), py::arg("lr"), py::arg("rho") = 0.99, py::arg("eps") = 1e-8,
        py::arg("weight_decay") = 0.0, py::arg("hyper") = py::none());
}

}  // namespace minisinga
