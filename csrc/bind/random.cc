#include "bind/bind.h"

namespace minisinga {

void InitRandom(py::module_& m) { (void)m; }

}  // namespace minisinga
