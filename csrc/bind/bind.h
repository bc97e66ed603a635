// One init function per area; module.cc calls them all. Bindings hold no logic.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

namespace minisinga {
void InitCore(py::module_& m);
void InitElementwise(py::module_& m);
void InitReduce(py::module_& m);
void InitBlas(py::module_& m);
void InitTransform(py::module_& m);
void InitConv(py::module_& m);
void InitPool(py::module_& m);
void InitSoftmax(py::module_& m);
void InitBatchNorm(py::module_& m);
void InitRandom(py::module_& m);
void InitRnn(py::module_& m);
void InitCast(py::module_& m);
void InitOptim(py::module_& m);
void InitSelect(py::module_& m);
}  // namespace minisinga
