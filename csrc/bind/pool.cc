#include "bind/bind.h"
#include "ops/pool.h"

namespace minisinga {

void InitPool(py::module_& m) {
  m.def("pool2d", &ops::Pool2d, py::arg("x"), py::arg("kernel"), py::arg("stride"),
        py::arg("padding"), py::arg("is_max"), py::arg("count_include_pad") = true);
  m.def("pool2d_backward", &ops::Pool2dBackward, py::arg("dy"), py::arg("x_shape"),
        py::arg("indices"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
        py::arg("is_max"), py::arg("count_include_pad") = true);
}

}  // namespace minisinga
