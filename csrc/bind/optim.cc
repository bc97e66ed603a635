#include "bind/bind.h"

namespace minisinga {

void InitOptim(py::module_& m) { (void)m; }

}  // namespace minisinga
