#include "bind/bind.h"

namespace minisinga {

void InitBlas(py::module_& m) { (void)m; }

}  // namespace minisinga
