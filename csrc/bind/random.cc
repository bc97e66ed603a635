#include "bind/bind.h"
#include "ops/random.h"

namespace minisinga {

void InitRandom(py::module_& m) {
  m.def("uniform", &ops::Uniform, py::arg("t"), py::arg("low") = 0.0, py::arg("high") = 1.0);
  m.def("gaussian", &ops::Gaussian, py::arg("t"), py::arg("mean") = 0.0, py::arg("std") = 1.0);
  m.def("bernoulli", &ops::Bernoulli, py::arg("t"), py::arg("p"));
  m.def("philox4x32_10", &ops::Philox4x32_10, py::arg("counter"), py::arg("key"));
}

}  // namespace minisinga
