#include "bind/bind.h"

namespace minisinga {

void InitBatchNorm(py::module_& m) { (void)m; }

}  // namespace minisinga
