#include "bind/bind.h"

namespace minisinga {

void InitReduce(py::module_& m) { (void)m; }

}  // namespace minisinga
