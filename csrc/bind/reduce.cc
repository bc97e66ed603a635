#include "bind/bind.h"
#include "ops/reduce.h"

namespace minisinga {

void InitReduce(py::module_& m) {
  m.def("reduce_sum", &ops::ReduceSum, py::arg("x"), py::arg("axes") = py::none(),
        py::arg("keepdims") = false);
  m.def("reduce_mean", &ops::ReduceMean, py::arg("x"), py::arg("axes") = py::none(),
        py::arg("keepdims") = false);
  m.def("reduce_max", &ops::ReduceMax, py::arg("x"), py::arg("axes") = py::none(),
        py::arg("keepdims") = false);
  m.def("reduce_min", &ops::ReduceMin, py::arg("x"), py::arg("axes") = py::none(),
        py::arg("keepdims") = false);
  m.def("argmax", &ops::ArgMax, py::arg("x"), py::arg("axis"), py::arg("keepdims") = false);
  m.def("argmin", &ops::ArgMin, py::arg("x"), py::arg("axis"), py::arg("keepdims") = false);
  m.def("sum_to_shape", &ops::SumToShape, py::arg("x"), py::arg("shape"));
}

}  // namespace minisinga
