#include "bind/bind.h"

namespace minisinga {

void InitCast(py::module_& m) { (void)m; }

}  // namespace minisinga
