#include "bind/bind.h"
#include "ops/rnn.h"

namespace minisinga {

void InitRnn(py::module_& m) {
  m.def("lstm_cell", &ops::LstmCell, py::arg("z"), py::arg("c0") = py::none());
  m.def("lstm_cell_backward", &ops::LstmCellBackward, py::arg("act"), py::arg("c0"),
        py::arg("c"), py::arg("dh"), py::arg("dc"));
  m.def("gru_cell", &ops::GruCell, py::arg("gx"), py::arg("gh"), py::arg("h"));
  m.def("gru_cell_backward", &ops::GruCellBackward, py::arg("act"), py::arg("h"),
        py::arg("dy"));
}

}  // namespace minisinga
