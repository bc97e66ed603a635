#include "bind/bind.h"
#include "ops/select.h"

namespace minisinga {

void InitSelect(py::module_& m) {
  m.def("select_sparse", &ops::SelectSparse, py::arg("v"), py::arg("spars"), py::arg("topk"));
}

}  // namespace minisinga
