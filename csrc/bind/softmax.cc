#include "bind/bind.h"
#include "ops/softmax.h"

namespace minisinga {

void InitSoftmax(py::module_& m) {
  m.def("softmax", &ops::Softmax, py::arg("x"), py::arg("axis") = -1);
  m.def("log_softmax", &ops::LogSoftmax, py::arg("x"), py::arg("axis") = -1);
  m.def("softmax_backward", &ops::SoftmaxBackward, py::arg("y"), py::arg("dy"),
        py::arg("axis") = -1);
  m.def("log_softmax_backward", &ops::LogSoftmaxBackward, py::arg("y"), py::arg("dy"),
        py::arg("axis") = -1);
  m.def("softmax_cross_entropy", &ops::SoftmaxCrossEntropy, py::arg("logits"),
        py::arg("target"));
  m.def("softmax_cross_entropy_backward", &ops::SoftmaxCrossEntropyBackward, py::arg("prob"),
        py::arg("target"), py::arg("dloss"));
  m.def("cross_entropy", &ops::CrossEntropy, py::arg("prob"), py::arg("target"));
  m.def("cross_entropy_backward", &ops::CrossEntropyBackward, py::arg("prob"),
        py::arg("target"), py::arg("dloss"));
}

}  // namespace minisinga
