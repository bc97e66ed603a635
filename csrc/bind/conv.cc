#include "bind/bind.h"

namespace minisinga {

void InitConv(py::module_& m) { (void)m; }

}  // namespace minisinga
