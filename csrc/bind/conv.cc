#include "bind/bind.h"
#include "ops/conv.h"
#include "ops/tune.h"

namespace minisinga {

void InitConv(py::module_& m) {
  using ops::Ints;
  m.def("conv2d", &ops::Conv2d, py::arg("x"), py::arg("w"), py::arg("b") = py::none(),
        py::arg("stride") = Ints{1, 1}, py::arg("padding") = Ints{0, 0, 0, 0},
        py::arg("dilation") = Ints{1, 1}, py::arg("groups") = 1);
  m.def("conv2d_backward_data", &ops::Conv2dBackwardData, py::arg("dy"), py::arg("w"),
        py::arg("x_shape"), py::arg("stride") = Ints{1, 1},
        py::arg("padding") = Ints{0, 0, 0, 0}, py::arg("dilation") = Ints{1, 1},
        py::arg("groups") = 1);
  m.def("conv2d_backward_weight", &ops::Conv2dBackwardWeight, py::arg("dy"), py::arg("x"),
        py::arg("w_shape"), py::arg("stride") = Ints{1, 1},
        py::arg("padding") = Ints{0, 0, 0, 0}, py::arg("dilation") = Ints{1, 1},
        py::arg("groups") = 1);
  m.def("conv2d_backward_bias", &ops::Conv2dBackwardBias, py::arg("dy"));
  m.def("_set_conv_gpu_plan_on_cpu", &ops::SetConvGpuPlanOnCpu, py::arg("on"));
  m.def("_conv2d_path", [](const Device& dev, const Shape& x_shape, const Shape& w_shape,
                           const Ints& stride, const Ints& padding, const Ints& dilation,
                           int64_t groups, bool weight_grad) {
    return ops::Conv2dPath(&dev, x_shape, w_shape, stride, padding, dilation, groups,
                           weight_grad);
  }, py::arg("device"), py::arg("x_shape"), py::arg("w_shape"), py::arg("stride") = Ints{1, 1},
        py::arg("padding") = Ints{0, 0, 0, 0}, py::arg("dilation") = Ints{1, 1},
        py::arg("groups") = 1, py::arg("weight_grad") = false);
  m.def("set_conv_autotune", &ops::SetConvAutotune, py::arg("on"));
  m.def("conv_autotune", &ops::ConvAutotuneOn);
  m.def("conv_autotune_results", [](const Device& dev) {
    py::list out;
    for (const ops::TuneResult& r : ops::TuneResults(&dev)) {
      py::dict d;
      d["key"] = r.key;
      d["chosen"] = r.names[r.chosen];
      py::list times;
      for (size_t i = 0; i < r.names.size(); i++)
        times.append(py::make_tuple(r.names[i], r.seconds[i]));
      d["candidates"] = times;
      out.append(d);
    }
    return out;
  }, py::arg("device"));
  m.def("clear_conv_autotune", &ops::ClearTuneResults);
  // Tests: run the named plan wherever a convolution has it ("" = tune as usual).
  m.def("_force_conv_plan", &ops::ForceCandidate, py::arg("name"));
  m.def("conv2d_same_padding", &ops::Conv2dSamePadding, py::arg("in_hw"), py::arg("kernel"),
        py::arg("stride") = Ints{1, 1}, py::arg("dilation") = Ints{1, 1},
        py::arg("mode") = "SAME_UPPER");
}

}  // namespace minisinga
