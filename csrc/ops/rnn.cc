#include "ops/rnn.h"

#include "core/dispatch.h"
#include "kernels/rnn.h"

namespace minisinga {
namespace ops {

namespace {

// z (n, G H) of a float dtype; returns H.
int64_t CheckGates(const char* op, const Tensor& z, const char* what, int64_t G = 4) {
  CheckFloat(op, z, what);
  MS_CHECK(z.ndim() == 2 && z.shape()[1] % G == 0,
           op << ": " << what << " must be (batch, " << G << " * hidden), got shape "
              << ShapeStr(z.shape()));
  return z.shape()[1] / G;
}

// t is (n, cols), n z's rows, on z's device, of z's dtype.
void CheckState(const char* op, const Tensor& z, const Tensor& t, const char* what,
                int64_t cols) {
  CheckSameDevice(op, z, t);
  const Shape want{z.shape()[0], cols};
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

std::pair<Tensor, Tensor> GruCell(const Tensor& gx, const Tensor& gh, const Tensor& h) {
  const char* op = "gru_cell";
  const int64_t H = CheckGates(op, gx, "gx", 3);
  CheckState(op, gx, gh, "gh", 3 * H);
  CheckState(op, gx, h, "h", H);
  const int64_t n = gx.shape()[0];
  Tensor y({n, H}, gx.device(), gx.dtype()), act({n, 4 * H}, gx.device(), gx.dtype());
  TensorRef xr = gx.ref(), hr = gh.ref(), sr = h.ref(), yr = y.ref(), ar = act.ref();
  const DType dt = gx.dtype();
  gx.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, GruCell, dt, xr.data<char>(), hr.data<char>(), sr.data<char>(),
                    yr.mutable_data<char>(), ar.mutable_data<char>(), n, H);
      },
      {gx.block(), gh.block(), h.block()}, {y.block(), act.block()}, "GruCell");
  return {y, act};
}

std::tuple<Tensor, Tensor, Tensor> GruCellBackward(const Tensor& act, const Tensor& h,
                                                   const Tensor& dy) {
  const char* op = "gru_cell_backward";
  const int64_t H = CheckGates(op, act, "act", 4);
  CheckState(op, act, h, "h", H);
  CheckState(op, act, dy, "dy", H);
  const int64_t n = act.shape()[0];
  Tensor dgx({n, 3 * H}, act.device(), act.dtype()), dgh({n, 3 * H}, act.device(), act.dtype());
  Tensor dh({n, H}, act.device(), act.dtype());
  TensorRef ar = act.ref(), sr = h.ref(), gr = dy.ref(), xr = dgx.ref(), hr = dgh.ref(),
            dr = dh.ref();
  const DType dt = act.dtype();
  act.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, GruCellBackward, dt, ar.data<char>(), sr.data<char>(), gr.data<char>(),
                    xr.mutable_data<char>(), hr.mutable_data<char>(), dr.mutable_data<char>(), n,
                    H);
      },
      {act.block(), h.block(), dy.block()}, {dgx.block(), dgh.block(), dh.block()},
      "GruCellBackward");
  return {dgx, dgh, dh};
}

}  // namespace ops
}  // namespace minisinga
