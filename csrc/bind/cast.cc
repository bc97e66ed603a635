#include "bind/bind.h"
#include "ops/cast.h"

namespace minisinga {

void InitCast(py::module_& m) { m.def("as_type", &ops::AsType, py::arg("x"), py::arg("dtype")); }

}  // namespace minisinga
