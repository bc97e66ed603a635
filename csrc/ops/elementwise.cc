#include "ops/elementwise.h"

#include "core/dispatch.h"

namespace minisinga {
namespace ops {

const char* UnaryName(UnaryOp op) {
  switch (op) {
#define MS_NAME(Name, expr) \
  case UnaryOp::k##Name:    \
    return #Name;
    MS_UNARY_OPS(MS_NAME)
#undef MS_NAME
    default:
      return "?";
  }
}

const char* BinaryName(BinaryOp op) {
  switch (op) {
#define MS_NAME(Name, expr) \
  case BinaryOp::k##Name:   \
    return #Name;
    MS_BINARY_OPS(MS_NAME)
#undef MS_NAME
    default:
      return "?";
  }
}

Shape BroadcastShapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; i++) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    MS_CHECK(da == db || da == 1 || db == 1, op << ": shapes " << ShapeStr(a) << " and "
                                                << ShapeStr(b) << " are not broadcastable");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

StridedPlan MakePlan(const Shape& out, const std::vector<Shape>& ins, const char* op) {
  StridedPlan p;
  p.nin = static_cast<int>(ins.size());
  p.numel = Numel(out);
  const int nd = static_cast<int>(out.size());
  // Full-rank strides, then merge adjacent axes.
  std::vector<int64_t> shape(out.begin(), out.end());
  std::vector<std::vector<int64_t>> st(ins.size(), std::vector<int64_t>(nd, 0));
  for (size_t k = 0; k < ins.size(); k++) {
    const Shape& s = ins[k];
    MS_CHECK(s.size() <= out.size(), op << ": shape " << ShapeStr(s)
                                        << " cannot broadcast to " << ShapeStr(out));
    int64_t acc = 1;
    for (int d = nd - 1; d >= 0; d--) {
      int sd = d - (nd - static_cast<int>(s.size()));
      int64_t dim = sd >= 0 ? s[sd] : 1;
      MS_CHECK(dim == out[d] || dim == 1, op << ": shape " << ShapeStr(s)
                                             << " cannot broadcast to " << ShapeStr(out));
      st[k][d] = (dim == 1 && out[d] != 1) ? 0 : acc;
      acc *= dim;
    }
  }
  std::vector<int64_t> mshape;
  std::vector<std::vector<int64_t>> mst(ins.size());
  for (int d = 0; d < nd; d++) {
    if (shape[d] == 1) continue;  // size-1 axes carry no offset
    bool merge = !mshape.empty();
    for (size_t k = 0; k < ins.size() && merge; k++)
      merge = mst[k].back() == st[k][d] * shape[d];
    if (merge) {
      mshape.back() *= shape[d];
      for (size_t k = 0; k < ins.size(); k++) mst[k].back() = st[k][d];
    } else {
      mshape.push_back(shape[d]);
      for (size_t k = 0; k < ins.size(); k++) mst[k].push_back(st[k][d]);
    }
  }
  if (mshape.empty()) {
    mshape.push_back(1);
    for (auto& v : mst) v.push_back(0);
  }
  MS_CHECK(static_cast<int>(mshape.size()) <= kMaxDims,
           op << ": broadcasting " << ShapeStr(out) << " needs more than " << kMaxDims
              << " distinct axes");
  p.ndim = static_cast<int>(mshape.size());
  for (int d = 0; d < p.ndim; d++) {
    p.shape[d] = mshape[d];
    for (size_t k = 0; k < ins.size(); k++) p.stride[k][d] = mst[k][d];
  }
  return p;
}

static void CheckOut(const char* op, const Tensor& out, const Shape& shape, DType dt,
                     Device* dev) {
  MS_CHECK(out.shape() == shape, op << ": out has shape " << ShapeStr(out.shape())
                                    << ", expected " << ShapeStr(shape));
  MS_CHECK_TYPE(out.dtype() == dt, op << ": out has dtype " << DTypeName(out.dtype())
                                      << ", expected " << DTypeName(dt));
  MS_CHECK_TYPE(out.device() == dev, op << ": out is on " << out.device()->name()
                                        << ", expected " << dev->name());
}

Tensor Unary(UnaryOp op, const Tensor& x, double a, double b, std::optional<Tensor> out) {
  const char* name = UnaryName(op);
  Tensor y = out ? *out : Tensor(x.shape(), x.device(), x.dtype());
  if (out) CheckOut(name, y, x.shape(), x.dtype(), x.device());
  TensorRef xr = x.ref(), yr = y.ref();
  DType dt = x.dtype();
  x.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Unary, op, dt, xr.data<char>(), yr.mutable_data<char>(), xr.numel(),
                    a, b);
      },
      {x.block()}, {y.block()}, name);
  return y;
}

Tensor Binary(BinaryOp op, const Tensor& x, const Tensor& y, std::optional<Tensor> out) {
  const char* name = BinaryName(op);
  CheckSameDevice(name, x, y);
  MS_CHECK_TYPE(x.dtype() == y.dtype(), name << ": dtypes differ (" << DTypeName(x.dtype())
                                             << " and " << DTypeName(y.dtype())
                                             << "); cast one with as_type first");
  Shape shape = BroadcastShapes(x.shape(), y.shape(), name);
  Tensor o = out ? *out : Tensor(shape, x.device(), x.dtype());
  if (out) CheckOut(name, o, shape, x.dtype(), x.device());
  StridedPlan plan = MakePlan(shape, {x.shape(), y.shape()}, name);
  TensorRef xr = x.ref(), yr = y.ref(), orf = o.ref();
  DType dt = x.dtype();
  x.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Binary, op, dt, xr.data<char>(), yr.data<char>(),
                    orf.mutable_data<char>(), plan);
      },
      {x.block(), y.block()}, {o.block()}, name);
  return o;
}

Tensor Where(const Tensor& cond, const Tensor& x, const Tensor& y) {
  CheckSameDevice("where", cond, x);
  CheckSameDevice("where", x, y);
  MS_CHECK_TYPE(x.dtype() == y.dtype(), "where: x and y dtypes differ ("
                                            << DTypeName(x.dtype()) << " and "
                                            << DTypeName(y.dtype()) << ")");
  Shape shape = BroadcastShapes(BroadcastShapes(cond.shape(), x.shape(), "where"), y.shape(),
                                "where");
  Tensor o(shape, x.device(), x.dtype());
  StridedPlan plan = MakePlan(shape, {cond.shape(), x.shape(), y.shape()}, "where");
  TensorRef cr = cond.ref(), xr = x.ref(), yr = y.ref(), orf = o.ref();
  DType cdt = cond.dtype(), dt = x.dtype();
  x.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Where, cdt, dt, cr.data<char>(), xr.data<char>(), yr.data<char>(),
                    orf.mutable_data<char>(), plan);
      },
      {cond.block(), x.block(), y.block()}, {o.block()}, "Where");
  return o;
}

void Fill(const Tensor& t, double value) {
  TensorRef r = t.ref();
  DType dt = t.dtype();
  t.device()->Exec(
      [=](Context* ctx) { MS_DISPATCH(ctx, Fill, dt, r.mutable_data<char>(), r.numel(), value); },
      {}, {t.block()}, "Fill");
}

}  // namespace ops
}  // namespace minisinga
