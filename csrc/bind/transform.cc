#include "bind/bind.h"

namespace minisinga {

void InitTransform(py::module_& m) { (void)m; }

}  // namespace minisinga
