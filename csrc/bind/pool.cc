#include "bind/bind.h"

namespace minisinga {

void InitPool(py::module_& m) { (void)m; }

}  // namespace minisinga
