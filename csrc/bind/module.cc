#include "bind/bind.h"
#include "core/common.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "minisinga tensor core";
  // Errors thrown by MS_CHECK / MS_CHECK_TYPE / MS_FAIL surface as Python exceptions.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const minisinga::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const minisinga::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const minisinga::RuntimeError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
  minisinga::InitCore(m);
  minisinga::InitElementwise(m);
  minisinga::InitReduce(m);
  minisinga::InitBlas(m);
  minisinga::InitTransform(m);
  minisinga::InitConv(m);
  minisinga::InitPool(m);
  minisinga::InitSoftmax(m);
  minisinga::InitBatchNorm(m);
  minisinga::InitRandom(m);
  minisinga::InitRnn(m);
  minisinga::InitCast(m);
  minisinga::InitOptim(m);
  minisinga::InitSelect(m);
}
