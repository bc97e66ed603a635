#include "bind/bind.h"

namespace minisinga {

void InitSoftmax(py::module_& m) { (void)m; }

}  // namespace minisinga
