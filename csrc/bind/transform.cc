#include "bind/bind.h"
#include "ops/transform.h"

namespace minisinga {

void InitTransform(py::module_& m) {
  m.def("transpose", &ops::Transpose, py::arg("x"), py::arg("perm") = py::none());
  m.def("concat", &ops::Concat, py::arg("tensors"), py::arg("axis") = 0);
  m.def("slice", &ops::Slice, py::arg("x"), py::arg("starts"), py::arg("stops"),
        py::arg("axes") = py::none(), py::arg("steps") = py::none());
  m.def("slice_backward", &ops::SliceBackward, py::arg("dy"), py::arg("x_shape"),
        py::arg("starts"), py::arg("stops"), py::arg("axes") = py::none(),
        py::arg("steps") = py::none());
  m.def("split", &ops::Split, py::arg("x"), py::arg("sizes"), py::arg("axis") = 0);
  m.def("pad", &ops::Pad, py::arg("x"), py::arg("pads"), py::arg("value") = 0.0);
  m.def("pad_backward", &ops::PadBackward, py::arg("dy"), py::arg("pads"));
  m.def("broadcast_to", &ops::BroadcastTo, py::arg("x"), py::arg("shape"));
  m.def("take", &ops::Take, py::arg("x"), py::arg("indices"), py::arg("axis") = 0);
  m.def("take_backward", &ops::TakeBackward, py::arg("dy"), py::arg("indices"), py::arg("axis"),
        py::arg("x_shape"));
  m.def("one_hot", &ops::OneHot, py::arg("labels"), py::arg("depth"),
        py::arg("dtype") = DType::kFloat32);
}

}  // namespace minisinga
