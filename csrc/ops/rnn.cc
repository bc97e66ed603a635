#include "ops/rnn.h"

#include "core/dispatch.h"
#include "kernels/rnn.h"

namespace minisinga {
namespace ops {

namespace {

// z (n, 4H) of a float dtype; returns H.
int64_t CheckGates(const char* op, const Tensor& z, const char* what) {
  CheckFloat(op, z, what);
  MS_CHECK(z.ndim() == 2 && z.shape()[1] % 4 == 0,
           op << ": " << what << " must be (batch, 4 * hidden), got shape "
              << ShapeStr(z.shape()));
  return z.shape()[1] / 4;
}

// t is (n, H) like the states, on z's device, of z's dtype.
void CheckState(const char* op, const Tensor& z, const Tensor& t, const char* what, int64_t H) {
  CheckSameDevice(op, z, t);
  const Shape want{z.shape()[0], H};
  MS_CHECK(t.shape() == want, op << ": " << what << " has shape " << ShapeStr(t.shape())
                                 << ", expected " << ShapeStr(want));
  MS_CHECK(t.dtype() == z.dtype(), op << ": " << what << " has dtype " << DTypeName(t.dtype())
                                      << ", expected " << DTypeName(z.dtype()));
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor> LstmCell(const Tensor& z, const std::optional<Tensor>& c0) {
  const char* op = "lstm_cell";
  const int64_t H = CheckGates(op, z, "z");
  if (c0) CheckState(op, z, *c0, "c0", H);
  const int64_t n = z.shape()[0];
  Tensor h({n, H}, z.device(), z.dtype()), c({n, H}, z.device(), z.dtype());
  Tensor act(z.shape(), z.device(), z.dtype());
  TensorRef zr = z.ref(), cr0 = c0 ? c0->ref() : TensorRef(), hr = h.ref(), cr = c.ref(),
            ar = act.ref();
  const bool has_c0 = c0.has_value();
  const DType dt = z.dtype();
  std::vector<BlockPtr> reads{z.block()};
  if (c0) reads.push_back(c0->block());
  z.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, LstmCell, dt, zr.data<char>(), has_c0 ? cr0.data<char>() : nullptr,
                    hr.mutable_data<char>(), cr.mutable_data<char>(), ar.mutable_data<char>(),
                    n, H);
      },
      reads, {h.block(), c.block(), act.block()}, "LstmCell");
  return {h, c, act};
}

std::pair<Tensor, std::optional<Tensor>> LstmCellBackward(const Tensor& act,
                                                         const std::optional<Tensor>& c0,
                                                         const Tensor& c, const Tensor& dh,
                                                         const Tensor& dc) {
  const char* op = "lstm_cell_backward";
  const int64_t H = CheckGates(op, act, "act");
  if (c0) CheckState(op, act, *c0, "c0", H);
  CheckState(op, act, c, "c", H);
  CheckState(op, act, dh, "dh", H);
  CheckState(op, act, dc, "dc", H);
  const int64_t n = act.shape()[0];
  Tensor dz(act.shape(), act.device(), act.dtype());
  std::optional<Tensor> dc0;
  if (c0) dc0 = Tensor({n, H}, act.device(), act.dtype());
  TensorRef ar = act.ref(), cr0 = c0 ? c0->ref() : TensorRef(), cr = c.ref(), hg = dh.ref(),
            cg = dc.ref(), zg = dz.ref(), c0g = dc0 ? dc0->ref() : TensorRef();
  const bool has_c0 = c0.has_value();
  const DType dt = act.dtype();
  std::vector<BlockPtr> reads{act.block(), c.block(), dh.block(), dc.block()};
  std::vector<BlockPtr> writes{dz.block()};
  if (c0) {
    reads.push_back(c0->block());
    writes.push_back(dc0->block());
  }
  act.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, LstmCellBackward, dt, ar.data<char>(),
                    has_c0 ? cr0.data<char>() : nullptr, cr.data<char>(), hg.data<char>(),
                    cg.data<char>(), zg.mutable_data<char>(),
                    has_c0 ? c0g.mutable_data<char>() : nullptr, n, H);
      },
      reads, writes, "LstmCellBackward");
  return {dz, dc0};
}

}  // namespace ops
}  // namespace minisinga
