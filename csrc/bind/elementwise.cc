#include "bind/bind.h"
#include "ops/elementwise.h"

namespace minisinga {

void InitElementwise(py::module_& m) {
  py::enum_<UnaryOp> u(m, "UnaryOp");
#define MS_VALUE(Name, expr) u.value(#Name, UnaryOp::k##Name);
  MS_UNARY_OPS(MS_VALUE)
#undef MS_VALUE
  py::enum_<BinaryOp> b(m, "BinaryOp");
#define MS_VALUE(Name, expr) b.value(#Name, BinaryOp::k##Name);
  MS_BINARY_OPS(MS_VALUE)
#undef MS_VALUE
  m.def("unary", &ops::Unary, py::arg("op"), py::arg("x"), py::arg("a") = 0.0,
        py::arg("b") = 0.0, py::arg("out") = py::none());
  m.def("binary", &ops::Binary, py::arg("op"), py::arg("x"), py::arg("y"),
        py::arg("out") = py::none());
  m.def("where", &ops::Where, py::arg("cond"), py::arg("x"), py::arg("y"));
  m.def("fill", &ops::Fill, py::arg("t"), py::arg("value"));
  m.def("broadcast_shapes", [](const Shape& a, const Shape& b) {
    return ops::BroadcastShapes(a, b, "broadcast_shapes");
  });
}

}  // namespace minisinga
