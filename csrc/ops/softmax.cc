#include "ops/softmax.h"

#include <sstream>
#include <vector>

#include "core/dispatch.h"
#include "kernels/transform.h"

namespace minisinga {
namespace ops {

namespace {

// (outer, d, inner) around `axis`.
void Split(const Tensor& x, int64_t axis, const char* op, int64_t* outer, int64_t* d,
           int64_t* inner) {
  const int a = NormAxis(axis, x.ndim(), op);
  *outer = *inner = 1;
  for (int i = 0; i < a; i++) *outer *= x.shape()[i];
  for (int i = a + 1; i < x.ndim(); i++) *inner *= x.shape()[i];
  *d = x.shape()[a];
}

Tensor Forward(bool log, const Tensor& x, int64_t axis) {
  const char* op = log ? "log_softmax" : "softmax";
  CheckFloat(op, x, "input");
  int64_t outer, d, inner;
  Split(x, axis, op, &outer, &d, &inner);
  Tensor y(x.shape(), x.device(), x.dtype());
  TensorRef xr = x.ref(), yr = y.ref();
  const DType dt = x.dtype();
  x.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, Softmax, log, dt, xr.data<char>(), yr.mutable_data<char>(), outer, d,
                    inner);
      },
      {x.block()}, {y.block()}, log ? "LogSoftmax" : "Softmax");
  return y;
}

Tensor Backward(bool log, const Tensor& y, const Tensor& dy, int64_t axis) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  CheckFloat(op, y, "y");
  CheckSameDevice(op, y, dy);
  MS_CHECK_TYPE(dy.dtype() == y.dtype(), op << ": dy has dtype " << DTypeName(dy.dtype())
                                            << ", expected " << DTypeName(y.dtype())
                                            << " like y");
  MS_CHECK(dy.shape() == y.shape(), op << ": dy has shape " << ShapeStr(dy.shape())
                                       << ", expected " << ShapeStr(y.shape()) << " like y");
  int64_t outer, d, inner;
  Split(y, axis, op, &outer, &d, &inner);
  Tensor dx(y.shape(), y.device(), y.dtype());
  TensorRef yr = y.ref(), gr = dy.ref(), xr = dx.ref();
  const DType dt = y.dtype();
  y.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, SoftmaxBackward, log, dt, yr.data<char>(), gr.data<char>(),
                    xr.mutable_data<char>(), outer, d, inner);
      },
      {y.block(), dy.block()}, {dx.block()}, log ? "LogSoftmaxBackward" : "SoftmaxBackward");
  return dx;
}

// values must be (N, C) float with C >= 1.
void CheckRows(const char* op, const Tensor& t, const char* what) {
  CheckFloat(op, t, what);
  MS_CHECK(t.ndim() == 2, op << ": " << what << " must be 2-d (N, C), got shape "
                             << ShapeStr(t.shape()));
  MS_CHECK(t.shape()[1] >= 1, op << ": " << what << " of shape " << ShapeStr(t.shape())
                                 << " has no classes");
}

// Every label in [0, c): read back from the device, or while a graph records (no values yet)
// checked by a recorded kernel into a flag (see CheckFlag) when `check` is given; *check is
// then the flag's block, for the op to list as read so that it runs after the check.
void CheckLabels(const char* op, const Tensor& labels, int64_t c, BlockPtr* check) {
  Device* dev = labels.device();
  if (labels.numel() == 0) return;
  if (dev->graph_enabled()) {
    if (check == nullptr) return;  // a backward op: its forward checked the same labels
    Tensor flag({1}, dev, DType::kInt32);
    std::ostringstream os;
    os << op << ": a label of the int32 labels of shape " << ShapeStr(labels.shape())
       << " is out of range [0, " << c << ")";
    const std::string msg = os.str();
    TensorRef lr = labels.ref(), fr = flag.ref();
    const int64_t n = labels.numel();
    dev->ExecCheck(
        [=](Context* ctx) {
          MS_DISPATCH(ctx, IndexRange, lr.data<int32_t>(), n, 0, c, fr.mutable_data<int32_t>());
          RaiseIfFlagged(ctx, fr.data<int32_t>(), msg);
        },
        {labels.block()}, {flag.block()}, "CheckLabels");
    CheckFlag(flag, msg);
    *check = flag.block();
    return;
  }
  dev->Sync();
  std::vector<int32_t> host(labels.numel());
  dev->CopyToHost(host.data(), labels.ref().data<char>(), labels.nbytes());
  for (size_t i = 0; i < host.size(); i++)
    MS_CHECK(host[i] >= 0 && host[i] < c, op << ": label " << host[i] << " at index " << i
                                             << " is out of range [0, " << c << ")");
}

// Validates target against values (N, C); true for int32 labels, false for soft targets.
// `check` as for CheckLabels.
bool CheckTarget(const char* op, const Tensor& values, const char* what, const Tensor& target,
                 BlockPtr* check = nullptr) {
  CheckSameDevice(op, values, target);
  const Shape& s = values.shape();
  if (target.dtype() == DType::kInt32) {
    MS_CHECK(target.ndim() == 1 && target.shape()[0] == s[0],
             op << ": int32 labels have shape " << ShapeStr(target.shape()) << ", expected ("
                << s[0] << ",) for " << what << " of shape " << ShapeStr(s));
    CheckLabels(op, target, s[1], check);
    return true;
  }
  MS_CHECK_TYPE(target.dtype() == values.dtype(),
                op << ": target has dtype " << DTypeName(target.dtype())
                   << ", expected int32 labels or " << DTypeName(values.dtype())
                   << " soft targets like " << what);
  MS_CHECK(target.shape() == s, op << ": soft target has shape " << ShapeStr(target.shape())
                                   << ", expected " << ShapeStr(s) << " like " << what);
  return false;
}

void CheckDLoss(const char* op, const Tensor& values, const Tensor& dloss) {
  CheckSameDevice(op, values, dloss);
  MS_CHECK_TYPE(dloss.dtype() == values.dtype(), op << ": dloss has dtype "
                                                    << DTypeName(dloss.dtype()) << ", expected "
                                                    << DTypeName(values.dtype()));
  MS_CHECK(dloss.ndim() == 1 && dloss.shape()[0] == values.shape()[0],
           op << ": dloss has shape " << ShapeStr(dloss.shape()) << ", expected ("
              << values.shape()[0] << ",), one gradient per sample");
}

}  // namespace

Tensor Softmax(const Tensor& x, int64_t axis) { return Forward(false, x, axis); }
Tensor LogSoftmax(const Tensor& x, int64_t axis) { return Forward(true, x, axis); }
Tensor SoftmaxBackward(const Tensor& y, const Tensor& dy, int64_t axis) {
  return Backward(false, y, dy, axis);
}
Tensor LogSoftmaxBackward(const Tensor& y, const Tensor& dy, int64_t axis) {
  return Backward(true, y, dy, axis);
}

std::pair<Tensor, Tensor> SoftmaxCrossEntropy(const Tensor& logits, const Tensor& target) {
  const char* op = "softmax_cross_entropy";
  CheckRows(op, logits, "logits");
  BlockPtr check;
  const bool labels = CheckTarget(op, logits, "logits", target, &check);
  const int64_t n = logits.shape()[0], c = logits.shape()[1];
  Tensor loss({n}, logits.device(), logits.dtype());
  Tensor prob(logits.shape(), logits.device(), logits.dtype());
  TensorRef xr = logits.ref(), tr = target.ref(), lr = loss.ref(), pr = prob.ref();
  const DType dt = logits.dtype();
  logits.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, SoftmaxCrossEntropy, dt, xr.data<char>(), tr.data<char>(), labels,
                    lr.mutable_data<char>(), pr.mutable_data<char>(), n, c);
      },
      {logits.block(), target.block(), check}, {loss.block(), prob.block()},
      "SoftmaxCrossEntropy");
  return {loss, prob};
}

Tensor SoftmaxCrossEntropyBackward(const Tensor& prob, const Tensor& target,
                                   const Tensor& dloss) {
  const char* op = "softmax_cross_entropy_backward";
  CheckRows(op, prob, "prob");
  CheckDLoss(op, prob, dloss);
  const bool labels = CheckTarget(op, prob, "prob", target);
  const int64_t n = prob.shape()[0], c = prob.shape()[1];
  Tensor dx(prob.shape(), prob.device(), prob.dtype());
  TensorRef pr = prob.ref(), tr = target.ref(), gr = dloss.ref(), xr = dx.ref();
  const DType dt = prob.dtype();
  prob.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, SoftmaxCrossEntropyBackward, dt, pr.data<char>(), tr.data<char>(),
                    labels, gr.data<char>(), xr.mutable_data<char>(), n, c);
      },
      {prob.block(), target.block(), dloss.block()}, {dx.block()},
      "SoftmaxCrossEntropyBackward");
  return dx;
}

Tensor CrossEntropy(const Tensor& prob, const Tensor& target) {
  const char* op = "cross_entropy";
  CheckRows(op, prob, "prob");
  BlockPtr check;
  const bool labels = CheckTarget(op, prob, "prob", target, &check);
  const int64_t n = prob.shape()[0], c = prob.shape()[1];
  Tensor loss({n}, prob.device(), prob.dtype());
  TensorRef pr = prob.ref(), tr = target.ref(), lr = loss.ref();
  const DType dt = prob.dtype();
  prob.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, CrossEntropy, dt, pr.data<char>(), tr.data<char>(), labels,
                    lr.mutable_data<char>(), n, c);
      },
      {prob.block(), target.block(), check}, {loss.block()}, "CrossEntropy");
  return loss;
}

Tensor CrossEntropyBackward(const Tensor& prob, const Tensor& target, const Tensor& dloss) {
  const char* op = "cross_entropy_backward";
  CheckRows(op, prob, "prob");
  CheckDLoss(op, prob, dloss);
  const bool labels = CheckTarget(op, prob, "prob", target);
  const int64_t n = prob.shape()[0], c = prob.shape()[1];
  Tensor dx(prob.shape(), prob.device(), prob.dtype());
  TensorRef pr = prob.ref(), tr = target.ref(), gr = dloss.ref(), xr = dx.ref();
  const DType dt = prob.dtype();
  prob.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, CrossEntropyBackward, dt, pr.data<char>(), tr.data<char>(), labels,
                    gr.data<char>(), xr.mutable_data<char>(), n, c);
      },
      {prob.block(), target.block(), dloss.block()}, {dx.block()}, "CrossEntropyBackward");
  return dx;
}

}  // namespace ops
}  // namespace minisinga
