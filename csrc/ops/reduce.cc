#include "ops/reduce.h"

#include <algorithm>
#include <limits>
#include <sstream>

#include "core/dispatch.h"
#include "ops/copy.h"

namespace minisinga {
namespace ops {

namespace {

const char* OpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "reduce_sum";
    case ReduceOp::kMean: return "reduce_mean";
    case ReduceOp::kMax: return "reduce_max";
    case ReduceOp::kMin: return "reduce_min";
  }
  return "reduce";
}

const char* ExecName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "ReduceSum";
    case ReduceOp::kMean: return "ReduceMean";
    case ReduceOp::kMax: return "ReduceMax";
    case ReduceOp::kMin: return "ReduceMin";
  }
  return "Reduce";
}

std::string AxesStr(const std::vector<int64_t>& axes) { return ShapeStr(Shape(axes)); }

// A run of adjacent axes (size-1 axes dropped) that are all reduced or all kept.
struct Group {
  int64_t size;
  bool reduced;
};

// One (outer, r, inner) kernel pass from `in` into `out`.
void Pass(ReduceOp op, const Tensor& in, const Tensor& out, int64_t outer, int64_t r,
          int64_t inner) {
  TensorRef ir = in.ref(), orf = out.ref();
  DType idt = in.dtype(), odt = out.dtype();
  in.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Reduce, op, idt, odt, ir.data<char>(), orf.mutable_data<char>(), outer,
                    r, inner);
      },
      {in.block()}, {out.block()}, ExecName(op));
}

}  // namespace

Tensor Reduce(ReduceOp op, const Tensor& x, const Axes& axes, bool keepdims) {
  const char* name = OpName(op);
  if (op == ReduceOp::kMean) CheckDType(name, x, {DType::kFloat32, DType::kFloat16});
  const int nd = x.ndim();
  std::vector<bool> red(nd, axes == std::nullopt);
  if (axes) {
    for (int64_t a : *axes) {
      int d = NormAxis(a, nd, name);
      MS_CHECK(!red[d], name << ": duplicate axis " << a << " in axes " << AxesStr(*axes)
                             << " for a tensor of shape " << ShapeStr(x.shape()));
      red[d] = true;
    }
  }
  Shape out_shape;
  int64_t count = 1;  // elements reduced into each output
  for (int d = 0; d < nd; d++) {
    if (red[d]) {
      count *= x.shape()[d];
      if (keepdims) out_shape.push_back(1);
    } else {
      out_shape.push_back(x.shape()[d]);
    }
  }
  Tensor y(out_shape, x.device(), x.dtype());
  if (op != ReduceOp::kSum)
    MS_CHECK(count > 0 || y.numel() == 0,
             name << ": reduction over zero elements (input shape " << ShapeStr(x.shape())
                  << ", axes " << (axes ? AxesStr(*axes) : std::string("all"))
                  << ") has no value; only reduce_sum allows it");
  if (y.numel() == 0) return y;
  if (x.numel() == 0) {  // a sum over zero elements: zeros
    Pass(op, x, y, y.numel(), 0, 1);
    return y;
  }

  std::vector<Group> groups;
  for (int d = 0; d < nd; d++) {
    if (x.shape()[d] == 1) continue;
    if (!groups.empty() && groups.back().reduced == red[d])
      groups.back().size *= x.shape()[d];
    else
      groups.push_back({x.shape()[d], red[d]});
  }
  const int npasses = static_cast<int>(
      std::count_if(groups.begin(), groups.end(), [](const Group& g) { return g.reduced; }));
  if (npasses == 0) {  // nothing but size-1 axes reduced
    Copy(y, x.Reshape(out_shape));
    return y;
  }
  // float16 keeps its intermediates in float32; the last pass writes y.
  const DType mid = x.dtype() == DType::kFloat16 ? DType::kFloat32 : x.dtype();
  Tensor cur = x;
  for (int pass = 0; pass < npasses; pass++) {
    // Largest reduced group first: it shrinks the data most.
    size_t g = groups.size();
    for (size_t i = 0; i < groups.size(); i++)
      if (groups[i].reduced && (g == groups.size() || groups[i].size > groups[g].size)) g = i;
    int64_t outer = 1, inner = 1;
    for (size_t i = 0; i < g; i++) outer *= groups[i].size;
    for (size_t i = g + 1; i < groups.size(); i++) inner *= groups[i].size;
    const int64_t r = groups[g].size;
    Tensor next = pass + 1 == npasses ? y : Tensor({outer * inner}, x.device(), mid);
    Pass(op, cur, next, outer, r, inner);
    cur = next;
    // Drop the group; its kept neighbours become adjacent and merge.
    if (g > 0 && g + 1 < groups.size()) {
      groups[g - 1].size *= groups[g + 1].size;
      groups.erase(groups.begin() + g, groups.begin() + g + 2);
    } else {
      groups.erase(groups.begin() + g);
    }
  }
  return y;
}

Tensor ReduceSum(const Tensor& x, const Axes& axes, bool keepdims) {
  return Reduce(ReduceOp::kSum, x, axes, keepdims);
}
Tensor ReduceMean(const Tensor& x, const Axes& axes, bool keepdims) {
  return Reduce(ReduceOp::kMean, x, axes, keepdims);
}
Tensor ReduceMax(const Tensor& x, const Axes& axes, bool keepdims) {
  return Reduce(ReduceOp::kMax, x, axes, keepdims);
}
Tensor ReduceMin(const Tensor& x, const Axes& axes, bool keepdims) {
  return Reduce(ReduceOp::kMin, x, axes, keepdims);
}

static Tensor ArgReduce(bool is_max, const Tensor& x, int64_t axis, bool keepdims) {
  const char* name = is_max ? "argmax" : "argmin";
  const int d = NormAxis(axis, x.ndim(), name);
  const Shape& s = x.shape();
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; i++) outer *= s[i];
  for (int i = d + 1; i < x.ndim(); i++) inner *= s[i];
  const int64_t r = s[d];
  Shape out_shape = s;
  if (keepdims)
    out_shape[d] = 1;
  else
    out_shape.erase(out_shape.begin() + d);
  Tensor y(out_shape, x.device(), DType::kInt32);
  MS_CHECK(r > 0 || y.numel() == 0, name << ": axis " << axis << " of shape " << ShapeStr(s)
                                         << " has size 0; there is no index to return");
  MS_CHECK(r <= std::numeric_limits<int32_t>::max(),
           name << ": axis " << axis << " of shape " << ShapeStr(s)
                << " is too long for int32 indices");
  if (y.numel() == 0) return y;
  TensorRef xr = x.ref(), yr = y.ref();
  DType dt = x.dtype();
  x.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, ArgReduce, is_max, dt, xr.data<char>(), yr.mutable_data<int32_t>(),
                    outer, r, inner);
      },
      {x.block()}, {y.block()}, is_max ? "ArgMax" : "ArgMin");
  return y;
}

Tensor ArgMax(const Tensor& x, int64_t axis, bool keepdims) {
  return ArgReduce(true, x, axis, keepdims);
}
Tensor ArgMin(const Tensor& x, int64_t axis, bool keepdims) {
  return ArgReduce(false, x, axis, keepdims);
}

Tensor SumToShape(const Tensor& x, const Shape& shape) {
  const int nd = x.ndim(), ns = static_cast<int>(shape.size());
  auto fail = [&]() {
    MS_THROW_(ValueError, "sum_to_shape: shape " << ShapeStr(shape) << " does not broadcast to "
                                                 << ShapeStr(x.shape())
                                                 << " (each of its dims must be 1 or equal to "
                                                    "the trailing dims of the input)");
  };
  if (ns > nd) fail();
  std::vector<int64_t> axes;
  for (int d = 0; d < nd; d++) {
    if (d < nd - ns) {
      axes.push_back(d);
      continue;
    }
    const int64_t want = shape[d - (nd - ns)];
    if (want == x.shape()[d]) continue;
    if (want != 1) fail();
    axes.push_back(d);
  }
  return Reduce(ReduceOp::kSum, x, axes, false).Reshape(shape);
}

}  // namespace ops
}  // namespace minisinga
