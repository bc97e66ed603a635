#include "ops/conv.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>

#include "core/dispatch.h"
#include "kernels/blas.h"
#include "ops/half.h"

namespace minisinga {
namespace ops {

namespace {

std::string IntsStr(const Ints& v) { return ShapeStr(Shape(v.begin(), v.end())); }

// Scratch from the device pool for the length of one kernel closure.
class Scratch {
 public:
  Scratch(Device* dev, int64_t floats)
      : dev_(dev), bytes_(static_cast<size_t>(floats) * sizeof(float)) {
    if (bytes_) p_ = static_cast<float*>(dev_->Malloc(bytes_));
  }
  ~Scratch() {
    if (p_) dev_->Free(p_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* get() const { return p_; }

 private:
  Device* dev_;
  size_t bytes_;
  float* p_ = nullptr;
};

// Bounds of the im2col scratch: hard (an image is split into bands of rows beyond it) and
// the size of a chunk of several images (about what stays in the cores' caches).
constexpr int64_t kScratchFloats = (int64_t{64} << 20) / sizeof(float);
constexpr int64_t kChunkFloats = (int64_t{2} << 20) / sizeof(float);
// Images whose output has fewer pixels than this are batched into one GEMM.
constexpr int64_t kTargetCols = 4096;
// GPU: images with at least this many output pixels go through one strided-batched GEMM, a
// GEMM per image straight between NCHW and the col matrix, with no layout pass; narrower
// images would make narrow GEMMs, so they share one wide GEMM and ConvScatter / ConvGather.
// $MINISINGA_CONV_BATCHED_COLS overrides it (read once; for tuning on a new GPU).
int64_t BatchedCols() {
  static const int64_t cols = [] {
    const char* env = std::getenv("MINISINGA_CONV_BATCHED_COLS");
    if (env == nullptr || *env == '\0') return int64_t{1024};
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    MS_CHECK(*end == '\0' && v >= 0, "MINISINGA_CONV_BATCHED_COLS must be an integer >= 0 "
                                      "(output pixels per image), got '" << env << "'");
    return static_cast<int64_t>(v);
  }();
  return cols;
}

// Whether CPU devices plan as GPUs do (tests check the GPU's plan on a CPU with it).
std::atomic<bool> g_gpu_plan_on_cpu{false};

// Everything a conv closure needs, computed (and checked) before Exec.
struct ConvPlan {
  ConvGeom g;
  int64_t N = 0, Cout = 0, groups = 1, Cg = 0, Coutg = 0;
  int64_t Rg = 0, R = 0, P = 0;  // col rows per group / in all, output pixels per image
  bool direct = false;           // 1x1, stride 1, no padding: x itself is the col matrix
  bool depthwise = false;        // groups == C > 1: direct kernels, no im2col
  bool batched = false;          // nb images, one strided-batched GEMM per group, in NCHW
  int64_t nb = 1, rows = 0;      // images per chunk; output rows per chunk when nb == 1
  int64_t col_floats = 0, ys_floats = 0;  // scratch: col matrix, [Cout, nb*P] operand
};

// `wgrad`: the plan of the weight gradient, which sums over the images and so always needs
// them side by side in one GEMM operand (never batched).
ConvPlan MakePlan(const char* op, const Device* dev, const Shape& x_shape,
                  const Shape& w_shape, const Ints& stride, const Ints& padding,
                  const Ints& dilation, int64_t groups, bool wgrad = false) {
  MS_CHECK(x_shape.size() == 4, op << ": x must be 4-D (N, C, H, W), got shape "
                                   << ShapeStr(x_shape));
  MS_CHECK(w_shape.size() == 4, op << ": w must be 4-D (Cout, C/groups, KH, KW), got shape "
                                   << ShapeStr(w_shape));
  MS_CHECK(groups >= 1, op << ": groups must be >= 1, got " << groups);
  ConvPlan p;
  p.N = x_shape[0];
  p.Cout = w_shape[0];
  p.groups = groups;
  const int64_t C = x_shape[1];
  MS_CHECK(C % groups == 0 && p.Cout % groups == 0,
           op << ": groups=" << groups << " must divide the input channels (" << C
              << ") and the output channels (" << p.Cout << "); x " << ShapeStr(x_shape)
              << ", w " << ShapeStr(w_shape));
  p.Cg = C / groups;
  p.Coutg = p.Cout / groups;
  MS_CHECK(w_shape[1] == p.Cg && p.Cout >= 1 && w_shape[2] >= 1 && w_shape[3] >= 1,
           op << ": w has shape " << ShapeStr(w_shape) << ", expected (Cout >= 1, " << p.Cg
              << ", KH >= 1, KW >= 1) for x " << ShapeStr(x_shape) << " with groups="
              << groups);
  CheckPair(op, "dilation", dilation, 1);
  p.g = WindowGeom(op, x_shape, w_shape[2], w_shape[3], stride, ExpandPadding(op, padding),
                   dilation);
  const ConvGeom& g = p.g;
  p.Rg = p.Cg * g.KH * g.KW;
  p.R = C * g.KH * g.KW;
  p.P = g.OH * g.OW;
  MS_CHECK(p.P < INT_MAX && p.R < INT_MAX && p.Cout < INT_MAX,
           op << ": x " << ShapeStr(x_shape) << " and w " << ShapeStr(w_shape)
              << " are too large for 32-bit BLAS indices");
  // On a GPU, kernel launches rather than caches are the cost: as many images per call as
  // the hard scratch bound allows, whatever the image size (a narrow 1x1 convolution then
  // pays one im2col copy instead of one GEMM per image).
  const bool gpu = dev->is_cuda() || g_gpu_plan_on_cpu.load();
  const bool pointwise = g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 &&
                         g.PB == 0 && g.PL == 0 && g.PR == 0;
  p.depthwise = groups > 1 && p.Cg == 1;
  p.batched = gpu && !wgrad && !p.depthwise && p.N > 1 && p.P >= BatchedCols();
  p.direct = pointwise && (!gpu || p.N == 1 || p.batched);
  p.rows = g.OH;
  if (p.depthwise) return p;
  if (p.direct) {
    if (p.batched) p.nb = p.N;  // no scratch: every image in one call
    return p;
  }
  // Several images per GEMM when one image makes a narrow GEMM, within the scratch bound.
  const int64_t chunk = gpu ? kScratchFloats : kChunkFloats;
  const int64_t per_image = (p.R + (p.batched ? 0 : p.Cout)) * p.P;
  if ((gpu || p.P < kTargetCols) && p.N > 1)
    p.nb = std::max<int64_t>(1, std::min(p.N, chunk / per_image));
  if (p.nb > 1) {
    p.col_floats = p.R * p.nb * p.P;
    p.ys_floats = p.batched ? 0 : p.Cout * p.nb * p.P;
  } else {  // one image, in bands of output rows when its col matrix is too large
    p.batched = false;
    p.rows = std::max<int64_t>(1, std::min(g.OH, kScratchFloats / (p.R * g.OW)));
    p.col_floats = p.R * p.rows * g.OW;
  }
  return p;
}

// float16 operands never get here: the ops below run them in float32 (ops/half.h).
void CheckFloat(const char* op, const Tensor& t, const char* what) {
  CheckDType(op, t, {DType::kFloat32, DType::kFloat16}, what);
}

}  // namespace

void CheckPair(const char* op, const char* what, const Ints& v, int64_t min) {
  MS_CHECK(v.size() == 2 && v[0] >= min && v[1] >= min,
           op << ": " << what << " must be 2 integers >= " << min << ", got " << IntsStr(v));
}

Ints ExpandPadding(const char* op, const Ints& padding) {
  MS_CHECK(padding.size() == 4 || padding.size() == 2,
           op << ": padding must be (top, bottom, left, right) or (h, w), got "
              << IntsStr(padding));
  for (auto v : padding)
    MS_CHECK(v >= 0, op << ": padding must be >= 0, got " << IntsStr(padding));
  if (padding.size() == 2) return {padding[0], padding[0], padding[1], padding[1]};
  return padding;
}

ConvGeom WindowGeom(const char* op, const Shape& x_shape, int64_t KH, int64_t KW,
                    const Ints& stride, const Ints& padding, const Ints& dilation) {
  CheckPair(op, "stride", stride, 1);
  MS_CHECK(x_shape[0] >= 0 && x_shape[1] >= 1 && x_shape[2] >= 1 && x_shape[3] >= 1,
           op << ": x shape " << ShapeStr(x_shape) << " must have C, H, W >= 1");
  ConvGeom g;
  g.C = x_shape[1];
  g.H = x_shape[2];
  g.W = x_shape[3];
  g.KH = KH;
  g.KW = KW;
  g.SH = stride[0];
  g.SW = stride[1];
  g.PT = padding[0];
  g.PB = padding[1];
  g.PL = padding[2];
  g.PR = padding[3];
  g.DH = dilation[0];
  g.DW = dilation[1];
  const int64_t eh = (KH - 1) * g.DH + 1, ew = (KW - 1) * g.DW + 1;
  const int64_t ph = g.H + g.PT + g.PB, pw = g.W + g.PL + g.PR;
  MS_CHECK(eh <= ph && ew <= pw, op << ": the (dilated) kernel " << eh << "x" << ew
                                     << " is larger than the padded input " << ph << "x" << pw
                                     << " (x " << ShapeStr(x_shape) << ", padding "
                                     << IntsStr(padding) << ")");
  g.OH = (ph - eh) / g.SH + 1;
  g.OW = (pw - ew) / g.SW + 1;
  return g;
}

Tensor Conv2d(const Tensor& x, const Tensor& w, const std::optional<Tensor>& b,
              const Ints& stride, const Ints& padding, const Ints& dilation, int64_t groups) {
  const char* op = "conv2d";
  if (IsHalf(x) || IsHalf(w) || IsHalf(b))
    return ToHalf(Conv2d(ToF32(x), ToF32(w), ToF32(b), stride, padding, dilation, groups));
  CheckFloat(op, x, "x");
  CheckFloat(op, w, "w");
  CheckSameDevice(op, x, w);
  ConvPlan p = MakePlan(op, x.device(), x.shape(), w.shape(), stride, padding, dilation,
                        groups);
  if (b) {
    CheckFloat(op, *b, "b");
    CheckSameDevice(op, x, *b);
    MS_CHECK(b->ndim() == 1 && b->shape(0) == p.Cout,
             op << ": b has shape " << ShapeStr(b->shape()) << ", expected (" << p.Cout
                << ",) for w " << ShapeStr(w.shape()));
  }
  Tensor y({p.N, p.Cout, p.g.OH, p.g.OW}, x.device());
  if (y.numel() == 0) return y;
  const bool has_b = b.has_value();
  TensorRef xr = x.ref(), wr = w.ref(), yr = y.ref(), br = has_b ? b->ref() : TensorRef();
  std::vector<BlockPtr> reads{x.block(), w.block()};
  if (has_b) reads.push_back(b->block());
  x.device()->Exec(
      [=](Context* ctx) {
        const ConvGeom& g = p.g;
        const float* xp = xr.data<float>();
        const float* wp = wr.data<float>();
        const float* bp = has_b ? br.data<float>() : nullptr;
        float* yp = yr.mutable_data<float>();
        if (p.depthwise) {
          MS_DISPATCH(ctx, DepthwiseConv2d, xp, wp, bp, p.N, g, p.Coutg, yp);
          return;
        }
        Scratch s(ctx->dev, p.col_floats + p.ys_floats);
        float* col = s.get();
        float* ys = col + p.col_floats;
        const int64_t xstep = g.C * g.H * g.W;
        for (int64_t n0 = 0; n0 < p.N; n0 += p.nb) {
          const int64_t nb = std::min(p.nb, p.N - n0);
          float* yn = yp + n0 * p.Cout * p.P;
          if (p.batched) {  // y_b = w col_b for each image b, per group
            const float* B = xp + n0 * xstep;
            int64_t ldb = p.P, stride_b = xstep;
            if (!p.direct) {
              MS_DISPATCH(ctx, Im2Col, B, nb, g, 0, g.OH, col);
              B = col;
              ldb = nb * p.P;
              stride_b = p.P;
            }
            for (int64_t k = 0; k < p.groups; k++)
              MS_DISPATCH(ctx, GemmStridedBatched, false, false, p.Coutg, p.P, p.Rg, 1.f,
                          wp + k * p.Coutg * p.Rg, p.Rg, 0, B + k * p.Rg * ldb, ldb, stride_b,
                          0.f, yn + k * p.Coutg * p.P, p.P, p.Cout * p.P, nb);
            if (bp)
              for (int64_t b = 0; b < nb; b++) {
                float* yb = yn + b * p.Cout * p.P;
                MS_DISPATCH(ctx, ConvScatter, yb, bp, 1, p.Cout, p.P, yb);
              }
            continue;
          }
          for (int64_t r0 = 0; r0 < g.OH; r0 += p.rows) {
            const int64_t cols = nb * std::min(p.rows, g.OH - r0) * g.OW;
            const float* B = xp + n0 * xstep;
            int64_t ldb = p.P;
            if (!p.direct) {
              MS_DISPATCH(ctx, Im2Col, B, nb, g, r0, std::min(p.rows, g.OH - r0), col);
              B = col;
              ldb = cols;
            }
            // One image: straight into y (rows r0.. of every channel); else via ys.
            float* C = nb == 1 ? yn + r0 * g.OW : ys;
            const int64_t ldc = nb == 1 ? p.P : cols;
            for (int64_t k = 0; k < p.groups; k++)
              MS_DISPATCH(ctx, Gemm, false, false, p.Coutg, cols, p.Rg, 1.f,
                          wp + k * p.Coutg * p.Rg, p.Rg, B + k * p.Rg * ldb, ldb, 0.f,
                          C + k * p.Coutg * ldc, ldc);
          }
          if (nb > 1)
            MS_DISPATCH(ctx, ConvScatter, ys, bp, nb, p.Cout, p.P, yn);
          else if (bp)
            MS_DISPATCH(ctx, ConvScatter, yn, bp, 1, p.Cout, p.P, yn);
        }
      },
      reads, {y.block()}, "Conv2d");
  return y;
}

Tensor Conv2dBackwardData(const Tensor& dy, const Tensor& w, const Shape& x_shape,
                          const Ints& stride, const Ints& padding, const Ints& dilation,
                          int64_t groups) {
  const char* op = "conv2d_backward_data";
  if (IsHalf(dy) || IsHalf(w))
    return ToHalf(Conv2dBackwardData(ToF32(dy), ToF32(w), x_shape, stride, padding, dilation,
                                     groups));
  CheckFloat(op, dy, "dy");
  CheckFloat(op, w, "w");
  CheckSameDevice(op, dy, w);
  ConvPlan p = MakePlan(op, w.device(), x_shape, w.shape(), stride, padding, dilation,
                        groups);
  const Shape y_shape{p.N, p.Cout, p.g.OH, p.g.OW};
  MS_CHECK(dy.shape() == y_shape, op << ": dy has shape " << ShapeStr(dy.shape())
                                     << ", expected " << ShapeStr(y_shape) << " for x "
                                     << ShapeStr(x_shape) << " and w " << ShapeStr(w.shape()));
  Tensor dx(x_shape, dy.device());
  if (dx.numel() == 0) return dx;
  TensorRef dyr = dy.ref(), wr = w.ref(), dxr = dx.ref();
  dy.device()->Exec(
      [=](Context* ctx) {
        const ConvGeom& g = p.g;
        const float* dyp = dyr.data<float>();
        const float* wp = wr.data<float>();
        float* dxp = dxr.mutable_data<float>();
        if (p.depthwise) {
          MS_DISPATCH(ctx, DepthwiseConv2dBackwardData, dyp, wp, p.N, g, p.Coutg, dxp);
          return;
        }
        Scratch s(ctx->dev, p.col_floats + p.ys_floats);
        float* col = s.get();
        float* ys = col + p.col_floats;
        const int64_t xstep = g.C * g.H * g.W;
        if (!p.direct) ctx->dev->Memset0(dxp, dxr.numel() * sizeof(float));  // Col2Im adds
        for (int64_t n0 = 0; n0 < p.N; n0 += p.nb) {
          const int64_t nb = std::min(p.nb, p.N - n0);
          const float* dyn = dyp + n0 * p.Cout * p.P;
          if (p.batched) {  // col_b = w^T dy_b for each image b, per group
            float* C = p.direct ? dxp + n0 * xstep : col;
            const int64_t ldc = p.direct ? p.P : nb * p.P, stride_c = p.direct ? xstep : p.P;
            for (int64_t k = 0; k < p.groups; k++)
              MS_DISPATCH(ctx, GemmStridedBatched, true, false, p.Rg, p.P, p.Coutg, 1.f,
                          wp + k * p.Coutg * p.Rg, p.Rg, 0, dyn + k * p.Coutg * p.P, p.P,
                          p.Cout * p.P, 0.f, C + k * p.Rg * ldc, ldc, stride_c, nb);
            if (!p.direct) MS_DISPATCH(ctx, Col2Im, col, nb, g, 0, g.OH, dxp + n0 * xstep);
            continue;
          }
          if (nb > 1) MS_DISPATCH(ctx, ConvGather, dyn, nb, p.Cout, p.P, ys);
          for (int64_t r0 = 0; r0 < g.OH; r0 += p.rows) {
            const int64_t rows = std::min(p.rows, g.OH - r0), cols = nb * rows * g.OW;
            const float* D = nb == 1 ? dyn + r0 * g.OW : ys;
            const int64_t ldd = nb == 1 ? p.P : cols;
            // col = w^T dy per group; for 1x1 convolutions col is dx itself.
            float* C = p.direct ? dxp + n0 * xstep : col;
            const int64_t ldc = p.direct ? p.P : cols;
            for (int64_t k = 0; k < p.groups; k++)
              MS_DISPATCH(ctx, Gemm, true, false, p.Rg, cols, p.Coutg, 1.f,
                          wp + k * p.Coutg * p.Rg, p.Rg, D + k * p.Coutg * ldd, ldd, 0.f,
                          C + k * p.Rg * ldc, ldc);
            if (!p.direct) MS_DISPATCH(ctx, Col2Im, col, nb, g, r0, rows, dxp + n0 * xstep);
          }
        }
      },
      {dy.block(), w.block()}, {dx.block()}, "Conv2dBackwardData");
  return dx;
}

Tensor Conv2dBackwardWeight(const Tensor& dy, const Tensor& x, const Shape& w_shape,
                            const Ints& stride, const Ints& padding, const Ints& dilation,
                            int64_t groups) {
  const char* op = "conv2d_backward_weight";
  if (IsHalf(dy) || IsHalf(x))
    return ToHalf(Conv2dBackwardWeight(ToF32(dy), ToF32(x), w_shape, stride, padding, dilation,
                                       groups));
  CheckFloat(op, dy, "dy");
  CheckFloat(op, x, "x");
  CheckSameDevice(op, dy, x);
  ConvPlan p = MakePlan(op, x.device(), x.shape(), w_shape, stride, padding, dilation,
                        groups, /*wgrad=*/true);
  const Shape y_shape{p.N, p.Cout, p.g.OH, p.g.OW};
  MS_CHECK(dy.shape() == y_shape, op << ": dy has shape " << ShapeStr(dy.shape())
                                     << ", expected " << ShapeStr(y_shape) << " for x "
                                     << ShapeStr(x.shape()) << " and w " << ShapeStr(w_shape));
  Tensor dw(w_shape, x.device());
  TensorRef dyr = dy.ref(), xr = x.ref(), dwr = dw.ref();
  x.device()->Exec(
      [=](Context* ctx) {
        const ConvGeom& g = p.g;
        float* dwp = dwr.mutable_data<float>();
        ctx->dev->Memset0(dwp, dwr.numel() * sizeof(float));  // GEMMs accumulate
        if (p.N == 0) return;
        const float* dyp = dyr.data<float>();
        const float* xp = xr.data<float>();
        if (p.depthwise) {
          MS_DISPATCH(ctx, DepthwiseConv2dBackwardWeight, dyp, xp, p.N, g, p.Coutg, dwp);
          return;
        }
        Scratch s(ctx->dev, p.col_floats + p.ys_floats);
        float* col = s.get();
        float* ys = col + p.col_floats;
        const int64_t xstep = g.C * g.H * g.W;
        for (int64_t n0 = 0; n0 < p.N; n0 += p.nb) {
          const int64_t nb = std::min(p.nb, p.N - n0);
          const float* dyn = dyp + n0 * p.Cout * p.P;
          if (nb > 1) MS_DISPATCH(ctx, ConvGather, dyn, nb, p.Cout, p.P, ys);
          for (int64_t r0 = 0; r0 < g.OH; r0 += p.rows) {
            const int64_t rows = std::min(p.rows, g.OH - r0), cols = nb * rows * g.OW;
            const float* B = xp + n0 * xstep;
            int64_t ldb = p.P;
            if (!p.direct) {
              MS_DISPATCH(ctx, Im2Col, B, nb, g, r0, rows, col);
              B = col;
              ldb = cols;
            }
            const float* D = nb == 1 ? dyn + r0 * g.OW : ys;
            const int64_t ldd = nb == 1 ? p.P : cols;
            // dw_k += dy_k col_k^T
            for (int64_t k = 0; k < p.groups; k++)
              MS_DISPATCH(ctx, Gemm, false, true, p.Coutg, p.Rg, cols, 1.f,
                          D + k * p.Coutg * ldd, ldd, B + k * p.Rg * ldb, ldb, 1.f,
                          dwp + k * p.Coutg * p.Rg, p.Rg);
          }
        }
      },
      {dy.block(), x.block()}, {dw.block()}, "Conv2dBackwardWeight");
  return dw;
}

Tensor Conv2dBackwardBias(const Tensor& dy) {
  const char* op = "conv2d_backward_bias";
  if (IsHalf(dy)) return ToHalf(Conv2dBackwardBias(ToF32(dy)));
  CheckFloat(op, dy, "dy");
  MS_CHECK(dy.ndim() == 4, op << ": dy must be 4-D (N, Cout, OH, OW), got shape "
                              << ShapeStr(dy.shape()));
  const int64_t N = dy.shape(0), C = dy.shape(1), HW = dy.shape(2) * dy.shape(3);
  Tensor db({C}, dy.device());
  TensorRef dyr = dy.ref(), dbr = db.ref();
  dy.device()->Exec(
      [=](Context* ctx) {
        MS_DISPATCH(ctx, ConvBiasGrad, dyr.data<float>(), N, C, HW, dbr.mutable_data<float>());
      },
      {dy.block()}, {db.block()}, "Conv2dBackwardBias");
  return db;
}

bool SetConvGpuPlanOnCpu(bool on) { return g_gpu_plan_on_cpu.exchange(on); }

std::tuple<int64_t, int64_t, int64_t, int64_t> Conv2dSamePadding(const Ints& in_hw,
                                                                 const Ints& kernel,
                                                                 const Ints& stride,
                                                                 const Ints& dilation,
                                                                 const std::string& mode) {
  const char* op = "conv2d_same_padding";
  CheckPair(op, "in_hw", in_hw, 1);
  CheckPair(op, "kernel", kernel, 1);
  CheckPair(op, "stride", stride, 1);
  CheckPair(op, "dilation", dilation, 1);
  MS_CHECK(mode == "SAME_UPPER" || mode == "SAME_LOWER",
           op << ": mode must be SAME_UPPER or SAME_LOWER, got '" << mode << "'");
  int64_t pad[4];
  for (int i = 0; i < 2; i++) {
    const int64_t out = (in_hw[i] + stride[i] - 1) / stride[i];
    const int64_t total = std::max<int64_t>(
        0, (out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i]);
    const int64_t small = total / 2, big = total - small;
    pad[2 * i] = mode == "SAME_UPPER" ? small : big;
    pad[2 * i + 1] = mode == "SAME_UPPER" ? big : small;
  }
  return {pad[0], pad[1], pad[2], pad[3]};
}

}  // namespace ops
}  // namespace minisinga
