// Bindings for Device, Tensor and data movement.
#include <pybind11/functional.h>

#include "bind/bind.h"
#include "core/graph.h"
#include "core/tensor.h"
#include "ops/copy.h"
#ifdef MS_WITH_CUDA
#include "core/cuda_device.h"
#endif

namespace minisinga {

namespace {

// CUDA-only device settings. The CudaGPU behind a Device, or nullptr (a CPU device, or a
// build without CUDA); setters raise TypeError for non-CUDA devices, getters give defaults.
#ifdef MS_WITH_CUDA
CudaGPU* AsCuda(Device& d) { return dynamic_cast<CudaGPU*>(&d); }
#else
struct NoCuda {  // stands in for CudaGPU in builds without CUDA: never reached
  void SetAllowTF32(bool) {}
  void SetCudaGraph(bool) {}
  bool allow_tf32() const { return false; }
  bool cuda_graph_enabled() const { return false; }
  bool cuda_graph_captured() const { return false; }
  int64_t cuda_graph_launches() const { return 0; }
  std::string cuda_graph_failure() const { return ""; }
};
NoCuda* AsCuda(Device&) { return nullptr; }
#endif

template <typename F>
void CudaSet(Device& d, const char* what, F f) {
  auto* g = AsCuda(d);
  MS_CHECK_TYPE(g != nullptr, what << ": " << d.name() << " is not a CUDA device");
  f(g);
}

py::dtype NumpyDType(DType dt) {
  switch (dt) {
    case DType::kFloat32: return py::dtype("float32");
    case DType::kFloat16: return py::dtype("float16");
    case DType::kInt32: return py::dtype("int32");
  }
  return py::dtype("float32");
}

py::tuple ShapeTuple(const Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); i++) t[i] = s[i];
  return t;
}

// Turns its device's caching off when destroyed. device.py keeps one for each CPU device it
// creates, dropped with the device's Python handle: devices live for ever (blocks hold raw
// pointers), but one nobody holds gives its memory back.
struct CacheGuard {
  Device* dev;
  ~CacheGuard() { dev->SetCaching(false); }
};

py::dict StatsDict(const MemoryStats& s) {
  py::dict d;
  d["current"] = s.current;
  d["peak"] = s.peak;
  d["allocations"] = s.allocations;
  d["reserved"] = s.reserved;
  d["system_allocations"] = s.system_allocs;
  return d;
}

std::vector<BlockPtr> Blocks(const std::vector<Tensor>& ts) {
  std::vector<BlockPtr> v;
  for (auto& t : ts) v.push_back(t.block());
  return v;
}

}  // namespace

void InitCore(py::module_& m) {
  py::enum_<DType>(m, "DType")
      .value("float32", DType::kFloat32)
      .value("float16", DType::kFloat16)
      .value("int32", DType::kInt32);

  py::class_<Device, std::unique_ptr<Device, py::nodelete>>(m, "Device")
      // SINGA's methods: id() is the GPU's ordinal, -1 for a CPU (SINGA's mark of a CPU).
      .def("id", [](Device& d) { return d.is_cuda() ? d.id() : -1; })
      .def_property_readonly("name", &Device::name)
      .def_property_readonly("is_cuda", &Device::is_cuda)
      .def("EnableGraph", &Device::EnableGraph, py::arg("enable"))
      .def("graph_enabled", &Device::graph_enabled)
      .def("RunGraph", &Device::RunGraph, py::arg("sequential") = false,
           py::call_guard<py::gil_scoped_release>())
      .def("ResetGraph", &Device::ResetGraph)
      .def_property_readonly("graph_size", [](Device& d) { return d.graph()->size(); })
      .def_property_readonly("graph_runs", [](Device& d) { return d.graph()->runs(); })
      .def("graph_plan", [](Device& d, bool sequential) {
             GraphPlan p = d.graph()->Plan(sequential);
             py::dict r;
             r["order"] = p.order;
             r["planned_peak"] = p.planned_peak;
             r["persistent_bytes"] = p.persistent_bytes;
             return r;
           }, py::arg("sequential") = false)
      .def("graph_node_names", [](Device& d) {
             std::vector<std::string> v;
             for (auto& n : d.graph()->nodes()) v.push_back(n.name);
             return v;
           })
      // Changes whenever the recorded graph does: a Model checks its recording is still there.
      .def("graph_version", [](Device& d) { return d.graph()->version(); })
      .def("set_graph_phase", [](Device& d, const std::string& p) { d.graph()->current_phase = p; })
      // A Python callable as a node: it runs with the GIL held, in stream order.
      .def("exec_python", [](Device& d, py::function fn, const std::vector<Tensor>& reads,
                             const std::vector<Tensor>& writes, const std::string& name) {
             auto holder = std::make_shared<py::function>(std::move(fn));
             d.Exec([holder](Context*) {
                      py::gil_scoped_acquire gil;
                      (*holder)();
                    }, Blocks(reads), Blocks(writes), name, /*host=*/true);
           }, py::arg("fn"), py::arg("reads"), py::arg("writes"), py::arg("name"))
      .def("Sync", &Device::Sync, py::call_guard<py::gil_scoped_release>())
      .def("SetRandSeed", &Device::SetRandSeed, py::arg("seed"))
      .def_property_readonly("rng_state", [](Device& d) {
        return py::make_tuple(d.context()->seed, d.context()->rng_offset);
      })
      .def("SetVerbosity", &Device::SetVerbosity, py::arg("verbosity"))
      .def_property_readonly("verbosity", &Device::verbosity)
      .def("SetSkipIteration", &Device::SetSkipIteration, py::arg("n"))
      .def("time_profiling_report", &Device::TimeProfilingReport)
      .def("reset_profiling", &Device::ResetProfiling)
      .def("memory_stats", [](Device& d) { return StatsDict(d.memory_stats()); })
      .def("reset_peak", &Device::ResetPeak)
      .def("empty_cache", &Device::EmptyCache)
      // The bytes of a block as Malloc hands it out, never written (for the test of
      // MINISINGA_POISON_MEMORY).
      .def("_fresh_block", [](Device& d, size_t n) {
        void* p = d.Malloc(n);
        std::string bytes(n, '\0');
        d.CopyToHost(bytes.data(), p, n);
        d.Free(p, n);
        return py::bytes(bytes);
      }, py::arg("nbytes"))
      // CUDA devices only (TypeError elsewhere): TF32 GEMMs, CUDA-graph capture of replays.
      .def("set_allow_tf32", [](Device& d, bool allow) {
             CudaSet(d, "set_allow_tf32", [&](auto* g) { g->SetAllowTF32(allow); });
           }, py::arg("allow"))
      .def_property_readonly("allow_tf32", [](Device& d) {
        auto* g = AsCuda(d);
        return g != nullptr && g->allow_tf32();
      })
      .def("set_cuda_graph", [](Device& d, bool enable) {
             CudaSet(d, "set_cuda_graph", [&](auto* g) { g->SetCudaGraph(enable); });
           }, py::arg("enable"))
      .def_property_readonly("cuda_graph_enabled", [](Device& d) {
        auto* g = AsCuda(d);
        return g != nullptr && g->cuda_graph_enabled();
      })
      .def_property_readonly("cuda_graph_captured", [](Device& d) {
        auto* g = AsCuda(d);
        return g != nullptr && g->cuda_graph_captured();
      })
      .def_property_readonly("cuda_graph_launches", [](Device& d) {
        auto* g = AsCuda(d);
        return g != nullptr ? g->cuda_graph_launches() : int64_t{0};
      })
      .def_property_readonly("cuda_graph_failure", [](Device& d) {
        auto* g = AsCuda(d);
        return g != nullptr ? std::string(g->cuda_graph_failure()) : std::string();
      })
      .def("__repr__", [](Device& d) { return "<Device " + d.name() + ">"; });

  // Tests: dependency-order replays pick ready nodes at random (seeded; 0 = recorded order).
  m.def("_set_graph_shuffle", &SetGraphShuffle, py::arg("seed"));
  m.def("default_device", &DefaultDevice, py::return_value_policy::reference);
  m.def("create_cpu_device", &CreateCpuDevice, py::return_value_policy::reference);
  py::class_<CacheGuard>(m, "_CacheGuard");
  m.def("_cache_guard", [](Device* d) { return std::make_unique<CacheGuard>(CacheGuard{d}); });
  m.def("cuda_device", &CudaDevice, py::arg("id"), py::return_value_policy::reference);
  m.def("cuda_device_count", &CudaDeviceCount);
  m.def("cuda_device_info", [](int id) {
        const GpuInfo i = CudaDeviceInfo(id);
        return py::dict(py::arg("name") = i.name, py::arg("major") = i.major,
                        py::arg("minor") = i.minor,
                        py::arg("multiprocessors") = i.multiprocessors,
                        py::arg("free_bytes") = i.free_bytes,
                        py::arg("total_bytes") = i.total_bytes);
      }, py::arg("id"));
  m.def("built_with_cuda", &BuiltWithCuda);

  py::class_<Tensor>(m, "Tensor")
      .def(py::init<const Shape&, Device*, DType>(), py::arg("shape"), py::arg("device"),
           py::arg("dtype") = DType::kFloat32)
      .def_property_readonly("shape", [](const Tensor& t) { return ShapeTuple(t.shape()); })
      .def_property_readonly("dtype", &Tensor::dtype)
      .def_property_readonly("device", &Tensor::device, py::return_value_policy::reference)
      .def_property_readonly("ndim", &Tensor::ndim)
      .def_property_readonly("numel", &Tensor::numel)
      .def_property_readonly("nbytes", &Tensor::nbytes)
      .def_property_readonly("allocated", [](const Tensor& t) { return t.block()->allocated(); })
      .def("reshape", &Tensor::Reshape, py::arg("shape"))
      .def("slice_rows", &Tensor::SliceRows, py::arg("start"), py::arg("stop"))
      .def("same_block", [](const Tensor& a, const Tensor& b) { return a.block() == b.block(); })
      .def("copy_from_numpy", [](const Tensor& t, py::array arr) {
             // tensor.py converts dtype and layout; here only the bytes are checked.
             MS_CHECK(arr.flags() & py::array::c_style, "copy_from_numpy: array is not C-contiguous");
             MS_CHECK_TYPE(arr.dtype().is(NumpyDType(t.dtype())),
                           "copy_from_numpy: array dtype " << std::string(py::str(arr.dtype()))
                                                           << " does not match tensor dtype "
                                                           << DTypeName(t.dtype()));
             ops::CopyFromHost(t, arr.data(), arr.nbytes());
           }, py::arg("array"))
      .def("to_numpy", [](const Tensor& t) {
        py::array arr(NumpyDType(t.dtype()), t.shape());
        void* dst = arr.mutable_data();
        {
          // A CUDA copy waits for the stream, perhaps for a peer's all-reduce: the
          // communicators' watchdog thread must be able to run meanwhile.
          py::gil_scoped_release nogil;
          ops::CopyToHost(t, dst, t.nbytes());
        }
        return arr;
      })
      .def("__repr__", &Tensor::Repr);

  m.def("copy", &ops::Copy, py::arg("dst"), py::arg("src"));
  m.def("clone", &ops::Clone, py::arg("t"));
  m.def("to_device", &ops::ToDevice, py::arg("t"), py::arg("device"));

  // ---- For minisinga.dist (communicators): zero-copy access to tensor memory ----
  // host_view: a numpy array aliasing a CPU tensor's memory (allocated here if it was not yet;
  // a never-written block reads as zeros). The array keeps the block alive, but a recorded
  // graph may still release an internal block's memory after its last use: take views at run
  // time (inside an exec_python node), not while recording.
  auto tensor_cls = py::reinterpret_borrow<py::class_<Tensor>>(m.attr("Tensor"));
  tensor_cls.def("host_view", [](const Tensor& t) {
    MS_CHECK(!t.device()->is_cuda(), "host_view: tensor is on " << t.device()->name()
                                          << "; only CPU tensors can be viewed from the host "
                                             "(use data_ptr for device memory)");
    char* base = static_cast<char*>(const_cast<void*>(t.block()->data())) + t.offset();
    auto keep = new Tensor(t);
    py::capsule owner(keep, [](void* p) { delete static_cast<Tensor*>(p); });
    return py::array(NumpyDType(t.dtype()), t.shape(), base, owner);
  });
  // data_ptr: the address of the first element in the device's memory (for NCCL / cupy).
  tensor_cls.def("data_ptr", [](const Tensor& t) {
    return reinterpret_cast<uintptr_t>(
        static_cast<char*>(const_cast<void*>(t.block()->data())) + t.offset());
  });
  // stream_handle: the device's cudaStream_t as an int (0 on CPU devices).
  auto device_cls = py::reinterpret_borrow<py::class_<Device, std::unique_ptr<Device, py::nodelete>>>(
      m.attr("Device"));
  device_cls.def_property_readonly("stream_handle", [](Device& d) {
    return reinterpret_cast<uintptr_t>(d.context()->stream);
  });
}

}  // namespace minisinga
