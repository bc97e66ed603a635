#include "ops/transform.h"

#include <algorithm>
#include <sstream>

#include "core/dispatch.h"
#include "kernels/elementwise.h"
#include "ops/copy.h"

namespace minisinga {
namespace ops {

namespace {

std::string IntsStr(const Ints& v) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < v.size(); i++) os << (i ? ", " : "") << v[i];
  os << "]";
  return os.str();
}

// One strided copy between two tensors, offsets in elements.
struct CopyJob {
  TensorRef src, dst;
  int64_t src_off = 0, dst_off = 0;
  CopyPlan plan;
};

// Runs the jobs in one Exec; when `fill` is set, `dst` is first filled with it.
void ExecCopies(std::vector<CopyJob> jobs, const std::vector<Tensor>& ins,
                const std::vector<Tensor>& outs, std::optional<double> fill, const char* name) {
  std::vector<BlockPtr> reads, writes;
  for (auto& t : ins) reads.push_back(t.block());
  for (auto& t : outs) writes.push_back(t.block());
  const TensorRef fill_ref = outs.front().ref();
  if (!fill) jobs.erase(std::remove_if(jobs.begin(), jobs.end(),
                                       [](const CopyJob& j) { return j.plan.numel == 0; }),
                        jobs.end());
  if (jobs.empty() && !fill) return;
  outs.front().device()->Exec(
      [=](Context* ctx) {
        if (fill)
          MS_DISPATCH(ctx, Fill, fill_ref.dtype, fill_ref.mutable_data<char>(),
                      fill_ref.numel(), *fill);
        for (const CopyJob& j : jobs) {
          const size_t es = SizeOf(j.src.dtype);
          MS_DISPATCH(ctx, StridedCopy, es, j.src.data<char>() + j.src_off * es,
                      j.dst.mutable_data<char>() + j.dst_off * es, j.plan);
        }
      },
      reads, writes, name);
}

// A normalised slice over every axis: start, step and length per axis.
struct SliceSpec {
  Ints start, step;
  Shape shape;
};

SliceSpec NormSlice(const Shape& shape, const Ints& starts, const Ints& stops,
                    const std::optional<Ints>& axes_in, const std::optional<Ints>& steps_in,
                    const char* op) {
  const int nd = static_cast<int>(shape.size());
  MS_CHECK(starts.size() == stops.size(), op << ": starts " << IntsStr(starts) << " and stops "
                                             << IntsStr(stops) << " differ in length");
  Ints axes, steps;
  if (axes_in) {
    axes = *axes_in;
  } else {
    for (size_t k = 0; k < starts.size(); k++) axes.push_back(static_cast<int64_t>(k));
  }
  steps = steps_in ? *steps_in : Ints(starts.size(), 1);
  MS_CHECK(axes.size() == starts.size() && steps.size() == starts.size(),
           op << ": starts, stops, axes and steps must have one entry per sliced axis, got "
              << starts.size() << ", " << stops.size() << ", " << axes.size() << " and "
              << steps.size());
  SliceSpec s{Ints(nd, 0), Ints(nd, 1), shape};
  std::vector<bool> seen(nd, false);
  for (size_t k = 0; k < axes.size(); k++) {
    const int a = NormAxis(axes[k], nd, op);
    MS_CHECK(!seen[a], op << ": axis " << axes[k] << " is sliced twice (axes "
                          << IntsStr(axes) << ")");
    seen[a] = true;
    MS_CHECK(steps[k] > 0, op << ": step " << steps[k] << " on axis " << axes[k]
                              << " is not positive; only positive steps are supported");
    const int64_t n = shape[a];
    auto clamp = [n](int64_t i) {
      if (i < 0) i = i < -n ? 0 : i + n;
      return std::min(i, n);
    };
    const int64_t b = clamp(starts[k]), e = clamp(stops[k]);
    s.start[a] = b;
    s.step[a] = steps[k];
    s.shape[a] = e > b ? (e - b - 1) / steps[k] + 1 : 0;
  }
  return s;
}

// The strided view of a tensor of `shape` that a slice selects: (offset, strides).
std::pair<int64_t, Ints> SliceView(const Shape& shape, const SliceSpec& s) {
  Ints st = ContiguousStrides(shape);
  int64_t off = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (s.shape[d] > 0) off += s.start[d] * st[d];
    st[d] *= s.step[d];
  }
  return {off, st};
}

Tensor SliceBy(const Tensor& x, const SliceSpec& s, const char* name) {
  Tensor y(s.shape, x.device(), x.dtype());
  auto view = SliceView(x.shape(), s);
  CopyJob job{x.ref(), y.ref(), view.first, 0,
              MakeCopyPlan(s.shape, view.second, ContiguousStrides(s.shape), name)};
  ExecCopies({job}, {x}, {y}, std::nullopt, name);
  return y;
}

void CheckShapeValid(const Shape& s, const char* op, const char* what) {
  for (auto d : s)
    MS_CHECK(d >= 0, op << ": " << what << " " << ShapeStr(s) << " has a negative dimension");
}

}  // namespace

Ints ContiguousStrides(const Shape& shape) {
  Ints st(shape.size());
  int64_t acc = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; d--) {
    st[d] = acc;
    acc *= shape[d];
  }
  return st;
}

CopyPlan MakeCopyPlan(const Shape& shape, const Ints& src_stride, const Ints& dst_stride,
                      const char* op) {
  CopyPlan p;
  p.numel = Numel(shape);
  Ints ms, mss, mds;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    if (!ms.empty() && mss.back() == src_stride[d] * shape[d] &&
        mds.back() == dst_stride[d] * shape[d]) {
      ms.back() *= shape[d];
      mss.back() = src_stride[d];
      mds.back() = dst_stride[d];
    } else {
      ms.push_back(shape[d]);
      mss.push_back(src_stride[d]);
      mds.push_back(dst_stride[d]);
    }
  }
  if (ms.empty()) {  // a single element
    ms = {1};
    mss = {0};
    mds = {0};
  }
  MS_CHECK(static_cast<int>(ms.size()) <= kMaxDims,
           op << ": the copy for shape " << ShapeStr(shape) << " needs more than " << kMaxDims
              << " distinct axes");
  p.ndim = static_cast<int>(ms.size());
  for (int d = 0; d < p.ndim; d++) {
    p.shape[d] = ms[d];
    p.src_stride[d] = mss[d];
    p.dst_stride[d] = mds[d];
  }
  return p;
}

Tensor Transpose(const Tensor& x, const std::optional<Ints>& perm_in) {
  const int nd = x.ndim();
  Ints perm;
  if (perm_in) {
    perm = *perm_in;
  } else {
    for (int d = nd - 1; d >= 0; d--) perm.push_back(d);
  }
  MS_CHECK(static_cast<int>(perm.size()) == nd,
           "transpose: perm " << IntsStr(perm) << " has " << perm.size()
                              << " entries for a tensor of shape " << ShapeStr(x.shape()));
  std::vector<bool> seen(nd, false);
  const Ints xs = ContiguousStrides(x.shape());
  Shape shape(nd);
  Ints src(nd);
  for (int i = 0; i < nd; i++) {
    MS_CHECK(perm[i] >= -nd && perm[i] < nd, "transpose: perm " << IntsStr(perm)
                                                                << " has axis " << perm[i]
                                                                << " out of range for shape "
                                                                << ShapeStr(x.shape()));
    const int a = static_cast<int>(perm[i] < 0 ? perm[i] + nd : perm[i]);
    MS_CHECK(!seen[a], "transpose: perm " << IntsStr(perm) << " repeats axis " << a
                                          << "; it must be a permutation of the axes of "
                                          << ShapeStr(x.shape()));
    seen[a] = true;
    shape[i] = x.shape()[a];
    src[i] = xs[a];
  }
  Tensor y(shape, x.device(), x.dtype());
  CopyJob job{x.ref(), y.ref(), 0, 0,
              MakeCopyPlan(shape, src, ContiguousStrides(shape), "transpose")};
  ExecCopies({job}, {x}, {y}, std::nullopt, "Transpose");
  return y;
}

Tensor Concat(const std::vector<Tensor>& xs, int64_t axis_in) {
  MS_CHECK(!xs.empty(), "concat: needs at least one tensor");
  const Tensor& x0 = xs[0];
  MS_CHECK(x0.ndim() >= 1, "concat: zero-dimensional tensors cannot be concatenated");
  const int axis = NormAxis(axis_in, x0.ndim(), "concat");
  Shape shape = x0.shape();
  shape[axis] = 0;
  for (size_t i = 0; i < xs.size(); i++) {
    const Tensor& x = xs[i];
    CheckSameDevice("concat", x0, x);
    MS_CHECK_TYPE(x.dtype() == x0.dtype(), "concat: tensor " << i << " has dtype "
                                                             << DTypeName(x.dtype())
                                                             << ", tensor 0 has "
                                                             << DTypeName(x0.dtype()));
    bool ok = x.ndim() == x0.ndim();
    for (int d = 0; ok && d < x.ndim(); d++) ok = d == axis || x.shape()[d] == x0.shape()[d];
    MS_CHECK(ok, "concat: tensor " << i << " has shape " << ShapeStr(x.shape())
                                   << ", tensor 0 has " << ShapeStr(x0.shape())
                                   << "; shapes must match except on axis " << axis);
    shape[axis] += x.shape()[axis];
  }
  Tensor y(shape, x0.device(), x0.dtype());
  const Ints ys = ContiguousStrides(shape);
  std::vector<CopyJob> jobs;
  int64_t at = 0;
  for (const Tensor& x : xs) {
    jobs.push_back(CopyJob{x.ref(), y.ref(), 0, at * ys[axis],
                           MakeCopyPlan(x.shape(), ContiguousStrides(x.shape()), ys, "concat")});
    at += x.shape()[axis];
  }
  ExecCopies(jobs, xs, {y}, std::nullopt, "Concat");
  return y;
}

Tensor Slice(const Tensor& x, const Ints& starts, const Ints& stops,
             const std::optional<Ints>& axes, const std::optional<Ints>& steps) {
  return SliceBy(x, NormSlice(x.shape(), starts, stops, axes, steps, "slice"), "Slice");
}

Tensor SliceBackward(const Tensor& dy, const Shape& x_shape, const Ints& starts,
                     const Ints& stops, const std::optional<Ints>& axes,
                     const std::optional<Ints>& steps) {
  CheckShapeValid(x_shape, "slice_backward", "x_shape");
  SliceSpec s = NormSlice(x_shape, starts, stops, axes, steps, "slice_backward");
  MS_CHECK(dy.shape() == s.shape, "slice_backward: dy has shape "
                                      << ShapeStr(dy.shape()) << ", but the slice of "
                                      << ShapeStr(x_shape) << " has shape " << ShapeStr(s.shape));
  Tensor dx(x_shape, dy.device(), dy.dtype());
  auto view = SliceView(x_shape, s);
  CopyJob job{dy.ref(), dx.ref(), 0, view.first,
              MakeCopyPlan(s.shape, ContiguousStrides(s.shape), view.second, "slice_backward")};
  ExecCopies({job}, {dy}, {dx}, 0.0, "SliceBackward");
  return dx;
}

std::vector<Tensor> Split(const Tensor& x, const Ints& sizes, int64_t axis_in) {
  MS_CHECK(x.ndim() >= 1, "split: cannot split a zero-dimensional tensor");
  const int axis = NormAxis(axis_in, x.ndim(), "split");
  int64_t total = 0;
  for (auto s : sizes) {
    MS_CHECK(s >= 0, "split: sizes " << IntsStr(sizes) << " contain a negative size");
    total = AddSize(total, s, "split", "the sum of the sizes");
  }
  MS_CHECK(total == x.shape()[axis], "split: sizes " << IntsStr(sizes) << " add up to " << total
                                                     << ", but axis " << axis << " of "
                                                     << ShapeStr(x.shape()) << " has "
                                                     << x.shape()[axis]);
  const Ints xs = ContiguousStrides(x.shape());
  std::vector<Tensor> ys;
  std::vector<CopyJob> jobs;
  int64_t at = 0;
  for (auto s : sizes) {
    Shape shape = x.shape();
    shape[axis] = s;
    ys.emplace_back(shape, x.device(), x.dtype());
    jobs.push_back(CopyJob{x.ref(), ys.back().ref(), at * xs[axis], 0,
                           MakeCopyPlan(shape, xs, ContiguousStrides(shape), "split")});
    at += s;
  }
  if (!ys.empty()) ExecCopies(jobs, {x}, ys, std::nullopt, "Split");
  return ys;
}

namespace {
void CheckPads(const Shape& shape, const Pads& pads, const char* op) {
  MS_CHECK(pads.size() == shape.size(), op << ": got " << pads.size()
                                           << " (before, after) pairs for a tensor of shape "
                                           << ShapeStr(shape) << "; give one per axis");
  for (size_t d = 0; d < pads.size(); d++)
    MS_CHECK(pads[d].first >= 0 && pads[d].second >= 0,
             op << ": pads (" << pads[d].first << ", " << pads[d].second << ") on axis " << d
                << " are negative; only constant padding with pads >= 0 is supported");
}
}  // namespace

Tensor Pad(const Tensor& x, const Pads& pads, double value) {
  CheckPads(x.shape(), pads, "pad");
  Shape shape = x.shape();
  for (size_t d = 0; d < pads.size(); d++)
    shape[d] = AddSize(AddSize(shape[d], pads[d].first, "pad", "the padded size"),
                       pads[d].second, "pad", "the padded size");
  Tensor y(shape, x.device(), x.dtype());
  const Ints ys = ContiguousStrides(shape);
  int64_t off = 0;
  for (size_t d = 0; d < pads.size(); d++) off += pads[d].first * ys[d];
  CopyJob job{x.ref(), y.ref(), 0, off,
              MakeCopyPlan(x.shape(), ContiguousStrides(x.shape()), ys, "pad")};
  std::optional<double> fill;
  if (y.numel() != x.numel()) fill = value;
  ExecCopies({job}, {x}, {y}, fill, "Pad");
  return y;
}

Tensor PadBackward(const Tensor& dy, const Pads& pads) {
  CheckPads(dy.shape(), pads, "pad_backward");
  SliceSpec s{Ints(dy.ndim()), Ints(dy.ndim(), 1), dy.shape()};
  for (int d = 0; d < dy.ndim(); d++) {
    // pads <= dy's size each (checked first: their sum may overflow).
    const bool fit = pads[d].first <= dy.shape()[d] && pads[d].second <= dy.shape()[d];
    const int64_t n = fit ? dy.shape()[d] - pads[d].first - pads[d].second : -1;
    MS_CHECK(n >= 0, "pad_backward: dy of shape " << ShapeStr(dy.shape()) << " is smaller than"
                                                  << " the pads (" << pads[d].first << ", "
                                                  << pads[d].second << ") on axis " << d);
    s.start[d] = pads[d].first;
    s.shape[d] = n;
  }
  return SliceBy(dy, s, "PadBackward");
}

Tensor BroadcastTo(const Tensor& x, const Shape& shape) {
  CheckShapeValid(shape, "broadcast_to", "shape");
  const int nd = static_cast<int>(shape.size()), off = nd - x.ndim();
  bool ok = off >= 0;
  const Ints xs = ContiguousStrides(x.shape());
  Ints src(nd, 0);
  for (int d = std::max(off, 0); ok && d < nd; d++) {
    const int64_t xd = x.shape()[d - off];
    ok = xd == shape[d] || xd == 1;
    src[d] = xd == 1 ? 0 : xs[d - off];
  }
  MS_CHECK(ok, "broadcast_to: cannot broadcast shape " << ShapeStr(x.shape()) << " to "
                                                        << ShapeStr(shape));
  Tensor y(shape, x.device(), x.dtype());
  CopyJob job{x.ref(), y.ref(), 0, 0,
              MakeCopyPlan(shape, src, ContiguousStrides(shape), "broadcast_to")};
  ExecCopies({job}, {x}, {y}, std::nullopt, "BroadcastTo");
  return y;
}

namespace {
// outer / n / inner sizes of a take along `axis` of x_shape.
void TakeSizes(const Shape& s, int axis, int64_t* outer, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int d = 0; d < axis; d++) *outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); d++) *inner *= s[d];
}

Shape TakeShape(const Shape& x, const Shape& idx, int axis) {
  Shape s(x.begin(), x.begin() + axis);
  s.insert(s.end(), idx.begin(), idx.end());
  s.insert(s.end(), x.begin() + axis + 1, x.end());
  return s;
}

void CheckIndices(const char* op, const Tensor& ref, const Tensor& indices) {
  CheckSameDevice(op, ref, indices);
  CheckDType(op, indices, {DType::kInt32}, "indices");
}
}  // namespace

Tensor Take(const Tensor& x, const Tensor& indices, int64_t axis_in) {
  CheckIndices("take", x, indices);
  MS_CHECK(x.ndim() >= 1, "take: cannot take from a zero-dimensional tensor");
  const int axis = NormAxis(axis_in, x.ndim(), "take");
  int64_t outer, inner;
  TakeSizes(x.shape(), axis, &outer, &inner);
  const int64_t n = x.shape()[axis], nidx = indices.numel();
  Tensor y(TakeShape(x.shape(), indices.shape(), axis), x.device(), x.dtype());
  Tensor bad({1}, x.device(), DType::kInt32);
  TensorRef xr = x.ref(), ir = indices.ref(), yr = y.ref(), br = bad.ref();
  const size_t es = SizeOf(x.dtype());
  std::ostringstream os;
  os << "take: an index is out of range for axis " << axis << " of size " << n << " (x shape "
     << ShapeStr(x.shape()) << "); valid indices are in [" << -n << ", " << n << ")";
  const std::string msg = os.str();
  x.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Take, es, xr.data<char>(), ir.data<int32_t>(), yr.mutable_data<char>(),
                    outer, n, nidx, inner, br.mutable_data<int32_t>());
        RaiseIfFlagged(ctx, br.data<int32_t>(), msg);
      },
      {x.block(), indices.block()}, {y.block(), bad.block()}, "Take");
  CheckFlag(bad, msg);
  return y;
}

Tensor TakeBackward(const Tensor& dy, const Tensor& indices, int64_t axis_in,
                    const Shape& x_shape) {
  CheckIndices("take_backward", dy, indices);
  CheckShapeValid(x_shape, "take_backward", "x_shape");
  MS_CHECK(!x_shape.empty(), "take_backward: x_shape must have at least one dimension");
  const int axis = NormAxis(axis_in, static_cast<int>(x_shape.size()), "take_backward");
  const Shape expect = TakeShape(x_shape, indices.shape(), axis);
  MS_CHECK(dy.shape() == expect, "take_backward: dy has shape "
                                     << ShapeStr(dy.shape()) << ", expected " << ShapeStr(expect)
                                     << " for x_shape " << ShapeStr(x_shape) << ", indices "
                                     << ShapeStr(indices.shape()) << " and axis " << axis);
  int64_t outer, inner;
  TakeSizes(x_shape, axis, &outer, &inner);
  const int64_t n = x_shape[axis], nidx = indices.numel();
  Tensor dx(x_shape, dy.device(), dy.dtype());
  Tensor bad({1}, dy.device(), DType::kInt32);
  TensorRef dr = dy.ref(), ir = indices.ref(), xr = dx.ref(), br = bad.ref();
  const DType dt = dy.dtype();
  std::ostringstream os;
  os << "take_backward: an index is out of range for axis " << axis << " of size " << n
     << " (x_shape " << ShapeStr(x_shape) << "); valid indices are in [" << -n << ", " << n
     << ")";
  const std::string msg = os.str();
  dy.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, TakeBackward, dt, dr.data<char>(), ir.data<int32_t>(),
                    xr.mutable_data<char>(), outer, n, nidx, inner, br.mutable_data<int32_t>());
        RaiseIfFlagged(ctx, br.data<int32_t>(), msg);
      },
      {dy.block(), indices.block()}, {dx.block(), bad.block()}, "TakeBackward");
  CheckFlag(bad, msg);
  return dx;
}

Tensor OneHot(const Tensor& labels, int64_t depth, DType dtype) {
  CheckDType("one_hot", labels, {DType::kInt32}, "labels");
  MS_CHECK(depth >= 0, "one_hot: depth " << depth << " is negative");
  Shape shape = labels.shape();
  shape.push_back(depth);
  Tensor y(shape, labels.device(), dtype);
  Tensor bad({1}, labels.device(), DType::kInt32);
  TensorRef lr = labels.ref(), yr = y.ref(), br = bad.ref();
  const int64_t n = labels.numel();
  std::ostringstream os;
  os << "one_hot: a label of the tensor of shape " << ShapeStr(labels.shape())
     << " is outside [0, " << depth << ")";
  const std::string msg = os.str();
  labels.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, OneHot, dtype, lr.data<int32_t>(), n, depth, yr.mutable_data<char>(),
                    br.mutable_data<int32_t>());
        RaiseIfFlagged(ctx, br.data<int32_t>(), msg);
      },
      {labels.block()}, {y.block(), bad.block()}, "OneHot");
  CheckFlag(bad, msg);
  return y;
}

}  // namespace ops
}  // namespace minisinga
