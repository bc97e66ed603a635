#include "ops/conv.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <initializer_list>
#include <type_traits>

#include "core/dispatch.h"
#include "kernels/blas.h"
#include "kernels/cast.h"
#include "kernels/conv.h"
#include "kernels/winograd.h"
#include "ops/half.h"
#include "ops/tune.h"

namespace minisinga {
namespace ops {

namespace {

std::string IntsStr(const Ints& v) { return ShapeStr(Shape(v.begin(), v.end())); }

// Scratch from the device pool for the length of one kernel closure.
class Scratch {
 public:
  Scratch(Device* dev, size_t bytes) : dev_(dev), bytes_(bytes) {
    if (bytes_) p_ = static_cast<char*>(dev_->Malloc(bytes_));
  }
  ~Scratch() {
    if (p_) dev_->Free(p_, bytes_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  // The scratch from byte `offset` on, as elements of type T.
  template <typename T>
  T* at(size_t offset) const {
    return reinterpret_cast<T*>(p_ + offset);
  }

 private:
  Device* dev_;
  size_t bytes_;
  char* p_ = nullptr;
};

// Bounds of the im2col scratch: hard (an image is split into bands of rows beyond it) and
// the size of a chunk of several images on a CPU (8 MB: against 2 MB, the autotuner's choice
// for the examples' CNN, 1.2-1.8x faster per pass on 2 cores and no slower elsewhere in
// benchmarks/bench_conv.py; wider GEMMs outweigh the cache misses).
constexpr int64_t kScratchFloats = (int64_t{64} << 20) / sizeof(float);
constexpr int64_t kChunkFloats = (int64_t{8} << 20) / sizeof(float);
// Images whose output has fewer pixels than this are batched into one GEMM.
constexpr int64_t kTargetCols = 4096;
// GPU: images with at least this many output pixels go through one strided-batched GEMM, a
// GEMM per image straight between NCHW and the col matrix, with no layout pass; narrower
// images would make narrow GEMMs, so they share one wide GEMM and ConvScatter / ConvGather.
// $MINISINGA_CONV_BATCHED_COLS overrides it (read once; for tuning on a new GPU).
int64_t BatchedCols() {
  static const int64_t cols = EnvCount("MINISINGA_CONV_BATCHED_COLS", 1024,
                                        "an integer >= 0 (output pixels per image)");
  return cols;
}

// float32 3x3 stride-1 convolutions (forward and both gradients; on a CPU only the large ones,
// below) go through Winograd F(m x m, 3x3) (kernels/winograd.h), m = kWinogradTile: (m + 2)^2
// products per m x m output tile instead of 9 m^2, and transforms that move less data than
// im2col. F(4x4) does 44% fewer products than F(2x2) and moves less data (36 planes per 16
// outputs instead of 16 per 4). Timed on an H200 (check.sh's A/B rows, 2026-11-28), ResNet-50
// batch 32 graph step: F(4x4) 992 images/s, F(2x2) 919, no Winograd 788.
// $MINISINGA_CONV_WINOGRAD (read once; for A/B timings): 0 turns Winograd off, 2 or 4 makes
// every Winograd plan F(2x2) or F(4x4) (the autotuner's too); unset, the autotuner times both.
constexpr int kWinogradTile = 4;
// 0 (off), 2 or 4 (that tile only), or -1 (unset: kWinogradTile, and both for the tuner).
int WinogradSetting() {
  static const int v = [] {
    const char* env = std::getenv("MINISINGA_CONV_WINOGRAD");
    if (env == nullptr || *env == 0) return -1;
    const std::string e(env);
    MS_CHECK(e == "0" || e == "2" || e == "4",
             "MINISINGA_CONV_WINOGRAD is '" << e << "'; expected 0 (off), 2 or 4 (the output "
                                               "tile of Winograd F(m x m, 3x3))");
    return std::stoi(e);
  }();
  return v;
}
// The tile of the device's own plan (0: no Winograd).
int WinogradTile() { return WinogradSetting() < 0 ? kWinogradTile : WinogradSetting(); }
// GPU: below this many channels (in or out) the transforms cost more than the products they
// save.
constexpr int64_t kWinogradMinChannels = 16;
// CPU: Winograd where it beat im2col on ResNet-50's 3x3 layers at batches 8 and 32 on 2 cores
// (`benchmarks/bench_conv.py --resnet50 --autotune [--batch 8]` lists each plan's time): y and
// dx from 64 channels in and out, dw (which transforms both x and dy) from 128, and at least
// this many tiles in all (narrower GEMMs lose: 512 channels at 7x7, batch 8, 4 tiles an image).
constexpr int64_t kCpuWinogradMinChannels = 64;
constexpr int64_t kCpuWinogradMinTiles = 128;

// Whether CPU devices plan as GPUs do (tests check the GPU's plan on a CPU with it).
std::atomic<bool> g_gpu_plan_on_cpu{false};

// How a plan is made: as a GPU's (chunks as wide as the scratch allows, Winograd,
// strided-batched GEMMs) or as a CPU's; for a GPU's, Winograd's output tile (0: none), and the
// strided-batched GEMMs (-1: for images of BatchedCols() output pixels or more, 0: never,
// 1: wherever they apply). The default is the device's own, with the switches' settings.
struct PlanStyle {
  bool gpu = false;
  int winograd = kWinogradTile;
  int batched = -1;
};

PlanStyle DefaultStyle(const Device* dev) {
  return PlanStyle{dev->is_cuda() || g_gpu_plan_on_cpu.load(), WinogradTile(), -1};
}

// Everything a conv closure needs, computed (and checked) before Exec.
struct ConvPlan {
  ConvGeom g;
  int64_t N = 0, Cout = 0, groups = 1, Cg = 0, Coutg = 0;
  int64_t Rg = 0, R = 0, P = 0;  // col rows per group / in all, output pixels per image
  bool gpu = false;              // planned for a GPU (or as one, see g_gpu_plan_on_cpu)
  bool direct = false;           // 1x1, stride 1, no padding: x itself is the col matrix
  bool depthwise = false;        // groups == C > 1: direct kernels, no im2col
  bool batched = false;          // nb images, one strided-batched GEMM per group, in NCHW
  int wino_m = 0;                // float32 through Winograd F(wino_m x wino_m, 3x3), or 0
  bool winograd() const { return wino_m > 0; }
  // Winograd weight gradient: images per chunk, tiles per image, slices per image's tiles and
  // chunks (their partial sums are kept side by side until the end).
  int64_t wino_nb = 0, wino_per = 0, wino_slices = 1, wino_chunks = 0;
  int64_t nb = 1, rows = 0;      // images per chunk; output rows per chunk when nb == 1
  bool split_k = true;           // CUDA: single GEMMs may split along K (Context)
  // Scratch elements: col matrix, [Cout, nb*P] operand. Sized for float32 elements; float16
  // convolutions keep whichever of them a GEMM writes in float32 (see Conv2d).
  int64_t col_floats = 0, ys_floats = 0;
};

// F(m x m) Winograd tiles per image of g's output, and images per chunk: as many as N whose
// input and output tiles (C and K channels, (m + 2)^2 positions) fit the scratch bound.
int64_t WinogradTiles(const ConvGeom& g, int m) {
  return winograd::Tiles(g.OH, m) * winograd::Tiles(g.OW, m);
}
int64_t WinogradImages(int64_t N, int64_t C, int64_t K, int m, int64_t per) {
  return std::max<int64_t>(1, std::min(N, kScratchFloats / (winograd::Planes(m) * (C + K) * per)));
}

// The weight gradient's Winograd chunks and slices: about 256 GEMM output tiles of 128 x 128
// over the P * S GEMMs (P planes; two tiles per multiprocessor of an H100), each slice at
// least 64 tiles long, S dividing the tiles of one image. A weight gradient whose partial sums
// would not fit the bound is left to im2col. (The forward and the data gradient chunk in
// WinogradConv.)
void PlanWinogradWeightGrad(ConvPlan* p) {
  const ConvGeom& g = p->g;
  const int64_t K = p->Cout, C = g.C, planes = winograd::Planes(p->wino_m);
  if (p->N == 0) return;
  p->wino_per = WinogradTiles(g, p->wino_m);
  p->wino_nb = WinogradImages(p->N, C, K, p->wino_m, p->wino_per);
  const int64_t tiles = ((K + 127) / 128) * ((C + 127) / 128);
  const int64_t want = std::max<int64_t>(1, 256 / (planes * tiles));
  int64_t best = 1;
  for (int64_t s = 2; s <= std::min(2 * want, p->wino_per); s++)
    if (p->wino_per % s == 0 && p->wino_nb * p->wino_per / s >= 64 &&
        std::abs(s - want) <= std::abs(best - want))
      best = s;
  p->wino_slices = best;
  p->wino_chunks = (p->N + p->wino_nb - 1) / p->wino_nb;
  if (p->wino_chunks * best * planes * K * C > kScratchFloats) p->wino_m = 0;
}

// `wgrad`: the plan of the weight gradient, which sums over the images and so always needs
// them side by side in one GEMM operand (never batched).
ConvPlan MakePlan(const char* op, const Shape& x_shape, const Shape& w_shape,
                  const Ints& stride, const Ints& padding, const Ints& dilation,
                  int64_t groups, bool wgrad, const PlanStyle& style) {
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
  const bool gpu = p.gpu = style.gpu;
  const bool pointwise = g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PT == 0 &&
                         g.PB == 0 && g.PL == 0 && g.PR == 0;
  p.depthwise = groups > 1 && p.Cg == 1;
  // Pads of at most 2 keep the data gradient (padded by 2 - pad) a convolution too.
  const int64_t channels = std::min(C, p.Cout);
  const bool winograd =
      groups == 1 && g.KH == 3 && g.KW == 3 && g.SH == 1 && g.SW == 1 && g.DH == 1 &&
      g.DW == 1 && std::max({g.PT, g.PB, g.PL, g.PR}) <= 2 && style.winograd > 0 &&
      (gpu ? channels >= kWinogradMinChannels
           : channels >= kCpuWinogradMinChannels * (wgrad ? 2 : 1) &&
                 p.N * WinogradTiles(g, style.winograd) >= kCpuWinogradMinTiles);
  p.wino_m = winograd ? style.winograd : 0;
  if (p.winograd() && wgrad) PlanWinogradWeightGrad(&p);
  p.batched = gpu && !wgrad && !p.depthwise && p.N > 1 &&
              (style.batched == 1 || (style.batched == -1 && p.P >= BatchedCols()));
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

// The plan's path (Conv2dPath's names); with `detail`, chunk and band sizes too.
std::string PlanName(const ConvPlan& p, bool detail) {
  if (p.depthwise) return "depthwise";
  if (p.winograd()) return p.wino_m == 2 ? "winograd" : "winograd 4x4";
  if (p.batched) return p.direct ? "batched-direct" : "batched";
  if (p.direct) return "direct";
  if (p.nb > 1) return detail ? "chunks of " + std::to_string(p.nb) : "chunks";
  if (!detail) return "bands";
  return p.rows < p.g.OH ? "bands of " + std::to_string(p.rows) + " rows" : "image by image";
}

bool SamePlan(const ConvPlan& a, const ConvPlan& b) {
  return a.wino_m == b.wino_m && a.batched == b.batched && a.direct == b.direct &&
         a.nb == b.nb && a.rows == b.rows && a.wino_slices == b.wino_slices &&
         a.split_k == b.split_k;
}

// The plans a convolution may run with: the device's own first, then (autotuning) the other
// distinct plans, which ops/tune.h times on first use. Winograd is float32 only.
struct Candidates {
  std::string key;  // op and shapes, for the tuner (with names: only where plans > 1)
  std::vector<ConvPlan> plans;
  std::vector<std::string> names;
};

Candidates PlanCandidates(const char* op, const Device* dev, const Shape& x_shape,
                          const Shape& w_shape, const Ints& stride, const Ints& padding,
                          const Ints& dilation, int64_t groups, bool wgrad, bool half) {
  Candidates c;
  c.plans.push_back(
      MakePlan(op, x_shape, w_shape, stride, padding, dilation, groups, wgrad, DefaultStyle(dev)));
  if (half) c.plans[0].wino_m = 0;  // float16 runs the plan's im2col path (ConvForward)
  if (!c.plans[0].depthwise && ConvAutotuneOn()) {
    // MINISINGA_CONV_WINOGRAD holds for the tuner too; unset, it times both tiles.
    const int wino = half ? 0 : WinogradTile();
    const int other = half || WinogradSetting() >= 0 ? 0 : (wino == 4 ? 2 : 4);
    for (const PlanStyle& s : {PlanStyle{true, wino, -1}, PlanStyle{true, other, -1},
                               PlanStyle{true, 0, -1}, PlanStyle{true, 0, 0},
                               PlanStyle{true, 0, 1}, PlanStyle{false, 0, 0}}) {
      ConvPlan q = MakePlan(op, x_shape, w_shape, stride, padding, dilation, groups, wgrad, s);
      bool seen = false;
      for (const ConvPlan& have : c.plans) seen = seen || SamePlan(have, q);
      if (!seen) c.plans.push_back(q);
    }
    // The weight gradient's single GEMMs (K x C outputs, long sums) are the ones a GPU splits
    // along K: each im2col plan also without (Winograd's batched GEMMs are never split).
    if (wgrad && dev->is_cuda())
      for (size_t i = 0, n = c.plans.size(); i < n; i++)
        if (!c.plans[i].winograd()) {
          c.plans.push_back(c.plans[i]);
          c.plans.back().split_k = false;
        }
  }
  if (c.plans.size() == 1) return c;  // nothing to tune: no key or names (RunTuned runs it)
  for (const ConvPlan& q : c.plans)
    c.names.push_back(PlanName(q, true) + (q.split_k ? "" : ", no split-K"));
  c.key = std::string(op) + (half ? " float16" : "") + " x" + ShapeStr(x_shape) + " w" +
          ShapeStr(w_shape) + " stride" + IntsStr(stride) + " pad" + IntsStr(padding) +
          " dilation" + IntsStr(dilation) + " groups " + std::to_string(groups);
  return c;
}

// float16 convolutions run on float16 operands in the GPU's plan, where every operand is
// float16 and the plan goes through GEMMs (tensor cores on CUDA). The rest run in float32 on
// float32 copies (ops/half.h): depthwise and mixed-dtype ones, and all of them on CPUs, whose
// float16 GEMMs widen their operands (widening x and w first is 9x fewer conversions than
// widening a 3x3 col matrix: measured 30% faster).
bool NativeHalf(const ConvPlan& p, std::initializer_list<const Tensor*> operands) {
  if (!p.gpu || p.depthwise) return false;
  for (const Tensor* t : operands)
    if (t && !IsHalf(*t)) return false;
  return true;
}

template <typename T>
constexpr bool kF32 = std::is_same<T, float>::value;

// y = conv(x, w) + bias for a 3x3, stride-1 geometry g with K output channels, by Winograd
// F(m x m, 3x3): U is the transformed filter ([P][K][g.C], P = (m + 2)^2); images in chunks
// whose tiles fit the scratch.
void WinogradConv(Context* ctx, int m, const ConvGeom& g, int64_t N, int64_t K, const float* x,
                  const float* U, const float* bias, float* y) {
  if (N == 0) return;
  const int64_t P = winograd::Planes(m), per = WinogradTiles(g, m);
  const int64_t nb = WinogradImages(N, g.C, K, m, per);
  Scratch s(ctx->dev, P * (g.C + K) * nb * per * sizeof(float));
  float* V = s.at<float>(0);
  float* M = V + P * g.C * nb * per;
  for (int64_t n0 = 0; n0 < N; n0 += nb) {
    const int64_t b = std::min(nb, N - n0), T = b * per;
    MS_DISPATCH(ctx, WinogradInput, m, x + n0 * g.C * g.H * g.W, b, g, int64_t{1}, V);
    // M[xi] (K x T) = U[xi] (K x C) V[xi] (C x T), the P tile positions in one call
    MS_DISPATCH(ctx, GemmStridedBatched, false, false, K, T, g.C, 1.f, U, g.C, K * g.C, V, T,
                g.C * T, 0.f, M, T, K * T, P);
    MS_DISPATCH(ctx, WinogradOutput, m, M, bias, b, g, K, y + n0 * K * g.OH * g.OW);
  }
}

void WinogradForward(Context* ctx, const ConvPlan& p, const float* x, const float* w,
                     const float* bias, float* y) {
  Scratch u(ctx->dev, winograd::Planes(p.wino_m) * p.Cout * p.g.C * sizeof(float));
  MS_DISPATCH(ctx, WinogradFilter, p.wino_m, w, p.Cout, p.g.C, false, u.at<float>(0));
  WinogradConv(ctx, p.wino_m, p.g, p.N, p.Cout, x, u.at<float>(0), bias, y);
}

// dw by Winograd: per chunk, the input tiles V and the gradient tiles Z (both in slices),
// then P[chunk, slice][xi] (K x C) = Z[slice][xi] V[slice][xi]^T, one batched GEMM; the
// filter transform's adjoint sums every P in order into dw.
void WinogradBackwardWeight(Context* ctx, const ConvPlan& p, const float* dy, const float* x,
                            float* dw) {
  const ConvGeom& g = p.g;
  const int m = p.wino_m;
  const int64_t K = p.Cout, C = g.C, S = p.wino_slices, nb = p.wino_nb, per = p.wino_per;
  const int64_t tiles = nb * per, parts = p.wino_chunks * S, NP = winograd::Planes(m);
  Scratch s(ctx->dev, (NP * (C + K) * tiles + parts * NP * K * C) * sizeof(float));
  float* V = s.at<float>(0);
  float* Z = V + NP * C * tiles;
  float* P = Z + NP * K * tiles;
  for (int64_t i = 0; i < p.wino_chunks; i++) {
    const int64_t n0 = i * nb, b = std::min(nb, p.N - n0), Ts = b * per / S;
    MS_DISPATCH(ctx, WinogradInput, m, x + n0 * C * g.H * g.W, b, g, S, V);
    MS_DISPATCH(ctx, WinogradOutputAdjoint, m, dy + n0 * K * g.OH * g.OW, b, g, K, S, Z);
    MS_DISPATCH(ctx, GemmStridedBatched, false, true, K, C, Ts, 1.f, Z, Ts, K * Ts, V, Ts,
                C * Ts, 0.f, P + i * S * NP * K * C, C, K * C, NP * S);
  }
  MS_DISPATCH(ctx, WinogradFilterAdjoint, m, P, parts, K, C, dw);
}

// The data gradient of a 3x3, stride-1 convolution is one too: dy (Cout channels, OH x OW)
// with the filters turned 180 degrees and their channels swapped, padded by 2 minus the
// forward padding on each side, which gives x's H x W.
void WinogradBackwardData(Context* ctx, const ConvPlan& p, const float* dy, const float* w,
                          float* dx) {
  const ConvGeom& f = p.g;
  ConvGeom g = f;
  g.C = p.Cout, g.H = f.OH, g.W = f.OW;
  g.PT = 2 - f.PT, g.PB = 2 - f.PB, g.PL = 2 - f.PL, g.PR = 2 - f.PR;
  g.OH = f.H, g.OW = f.W;
  Scratch u(ctx->dev, winograd::Planes(p.wino_m) * p.Cout * f.C * sizeof(float));
  MS_DISPATCH(ctx, WinogradFilter, p.wino_m, w, p.Cout, f.C, true, u.at<float>(0));
  WinogradConv(ctx, p.wino_m, g, p.N, f.C, dy, u.at<float>(0), nullptr, dx);
}

// y = conv(x, w) (+ b). Float16: each output is one GEMM sum rounded once; a bias is added
// in that same rounding where a chunk's result goes through ys (several images per GEMM),
// else to the rounded sum (one more rounding).
template <typename T>
void ConvForward(Context* ctx, const ConvPlan& p, const T* xp, const T* wp, const T* bp,
                 T* yp) {
  const ConvGeom& g = p.g;
  if constexpr (kF32<T>) {
    if (p.depthwise) return MS_DISPATCH(ctx, DepthwiseConv2d, xp, wp, bp, p.N, g, p.Coutg, yp);
    if (p.winograd()) return WinogradForward(ctx, p, xp, wp, bp, yp);
  }
  // [ys: float32][col: T]
  Scratch s(ctx->dev, p.ys_floats * sizeof(float) + p.col_floats * sizeof(T));
  float* ys = s.at<float>(0);
  T* col = s.at<T>(p.ys_floats * sizeof(float));
  const int64_t xstep = g.C * g.H * g.W;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.nb) {
    const int64_t nb = std::min(p.nb, p.N - n0);
    T* yn = yp + n0 * p.Cout * p.P;
    if (p.batched) {  // y_b = w col_b for each image b, per group
      const T* B = xp + n0 * xstep;
      int64_t ldb = p.P, stride_b = xstep;
      if (!p.direct) {
        MS_DISPATCH(ctx, Im2Col, B, nb, g, 0, g.OH, col);
        B = col;
        ldb = nb * p.P;
        stride_b = p.P;
      }
      for (int64_t k = 0; k < p.groups; k++)
        MS_DISPATCH(ctx, GemmStridedBatched, false, false, p.Coutg, p.P, p.Rg, 1.f,
                    wp + k * p.Coutg * p.Rg, p.Rg, 0, B + k * p.Rg * ldb, ldb, stride_b, 0.f,
                    yn + k * p.Coutg * p.P, p.P, p.Cout * p.P, nb);
      if (bp)
        for (int64_t b = 0; b < nb; b++) {
          T* yb = yn + b * p.Cout * p.P;
          MS_DISPATCH(ctx, ConvScatter, yb, bp, 1, p.Cout, p.P, yb);
        }
      continue;
    }
    for (int64_t r0 = 0; r0 < g.OH; r0 += p.rows) {
      const int64_t cols = nb * std::min(p.rows, g.OH - r0) * g.OW;
      const T* B = xp + n0 * xstep;
      int64_t ldb = p.P;
      if (!p.direct) {
        MS_DISPATCH(ctx, Im2Col, B, nb, g, r0, std::min(p.rows, g.OH - r0), col);
        B = col;
        ldb = cols;
      }
      // One image: straight into y (rows r0.. of every channel); else via ys.
      for (int64_t k = 0; k < p.groups; k++) {
        const T* A = wp + k * p.Coutg * p.Rg;
        if (nb == 1)
          MS_DISPATCH(ctx, Gemm, false, false, p.Coutg, cols, p.Rg, 1.f, A, p.Rg,
                      B + k * p.Rg * ldb, ldb, 0.f, yn + r0 * g.OW + k * p.Coutg * p.P, p.P);
        else
          MS_DISPATCH(ctx, Gemm, false, false, p.Coutg, cols, p.Rg, 1.f, A, p.Rg,
                      B + k * p.Rg * ldb, ldb, 0.f, ys + k * p.Coutg * cols, cols);
      }
    }
    if (nb > 1)
      MS_DISPATCH(ctx, ConvScatter, static_cast<const float*>(ys), bp, nb, p.Cout, p.P, yn);
    else if (bp)
      MS_DISPATCH(ctx, ConvScatter, static_cast<const T*>(yn), bp, 1, p.Cout, p.P, yn);
  }
}

// dx = conv^T(dy, w). Float16: col entries stay float32 until Col2Im sums them (rounded once).
template <typename T>
void ConvBackwardData(Context* ctx, const ConvPlan& p, const T* dyp, const T* wp, T* dxp,
                      int64_t dx_numel) {
  const ConvGeom& g = p.g;
  if constexpr (kF32<T>) {
    if (p.depthwise)
      return MS_DISPATCH(ctx, DepthwiseConv2dBackwardData, dyp, wp, p.N, g, p.Coutg, dxp);
    if (p.winograd()) return WinogradBackwardData(ctx, p, dyp, wp, dxp);
  }
  // [col: float32][ys: T]
  Scratch s(ctx->dev, p.col_floats * sizeof(float) + p.ys_floats * sizeof(T));
  float* col = s.at<float>(0);
  T* ys = s.at<T>(p.col_floats * sizeof(float));
  const int64_t xstep = g.C * g.H * g.W;
  // Col2Im writes whole images, except where an image is split into bands of rows: bands
  // share input rows, so they add into a zeroed dx.
  const bool bands = p.rows < g.OH;
  if (!p.direct && bands) ctx->dev->Memset0(dxp, dx_numel * sizeof(T));
  for (int64_t n0 = 0; n0 < p.N; n0 += p.nb) {
    const int64_t nb = std::min(p.nb, p.N - n0);
    const T* dyn = dyp + n0 * p.Cout * p.P;
    T* dxn = dxp + n0 * xstep;
    if (p.batched) {  // col_b = w^T dy_b for each image b, per group (dx_b for 1x1)
      for (int64_t k = 0; k < p.groups; k++) {
        const T* A = wp + k * p.Coutg * p.Rg;
        const T* D = dyn + k * p.Coutg * p.P;
        if (p.direct)
          MS_DISPATCH(ctx, GemmStridedBatched, true, false, p.Rg, p.P, p.Coutg, 1.f, A, p.Rg,
                      0, D, p.P, p.Cout * p.P, 0.f, dxn + k * p.Rg * p.P, p.P, xstep, nb);
        else
          MS_DISPATCH(ctx, GemmStridedBatched, true, false, p.Rg, p.P, p.Coutg, 1.f, A, p.Rg,
                      0, D, p.P, p.Cout * p.P, 0.f, col + k * p.Rg * nb * p.P, nb * p.P, p.P,
                      nb);
      }
      if (!p.direct)
        MS_DISPATCH(ctx, Col2Im, static_cast<const float*>(col), nb, g, 0, g.OH, false, dxn);
      continue;
    }
    if (nb > 1) MS_DISPATCH(ctx, ConvGather, dyn, nb, p.Cout, p.P, ys);
    for (int64_t r0 = 0; r0 < g.OH; r0 += p.rows) {
      const int64_t rows = std::min(p.rows, g.OH - r0), cols = nb * rows * g.OW;
      const T* D = nb == 1 ? dyn + r0 * g.OW : ys;
      const int64_t ldd = nb == 1 ? p.P : cols;
      // col = w^T dy per group; for 1x1 convolutions col is dx itself.
      for (int64_t k = 0; k < p.groups; k++) {
        const T* A = wp + k * p.Coutg * p.Rg;
        if (p.direct)
          MS_DISPATCH(ctx, Gemm, true, false, p.Rg, cols, p.Coutg, 1.f, A, p.Rg,
                      D + k * p.Coutg * ldd, ldd, 0.f, dxn + k * p.Rg * p.P, p.P);
        else
          MS_DISPATCH(ctx, Gemm, true, false, p.Rg, cols, p.Coutg, 1.f, A, p.Rg,
                      D + k * p.Coutg * ldd, ldd, 0.f, col + k * p.Rg * cols, cols);
      }
      if (!p.direct)
        MS_DISPATCH(ctx, Col2Im, static_cast<const float*>(col), nb, g, r0, rows, bands, dxn);
    }
  }
}

// dw = sum over images of dy col^T. Float16: summed in a float32 copy, rounded once.
template <typename T>
void ConvBackwardWeight(Context* ctx, const ConvPlan& p, const T* dyp, const T* xp, T* dwp,
                        int64_t dw_numel) {
  const ConvGeom& g = p.g;
  if constexpr (kF32<T>) {
    if (p.winograd() && p.N > 0) return WinogradBackwardWeight(ctx, p, dyp, xp, dwp);
  }
  ctx->dev->Memset0(dwp, dw_numel * sizeof(T));  // +0 in both types; the GEMMs accumulate
  if (p.N == 0) return;
  // The plan's split-K setting for its GEMMs, restored afterwards (exceptions included).
  struct SplitK {
    Context* ctx;
    bool before;
    ~SplitK() { ctx->gemm_split_k = before; }
  } restore{ctx, ctx->gemm_split_k};
  ctx->gemm_split_k = p.split_k;
  if constexpr (kF32<T>) {
    if (p.depthwise)
      return MS_DISPATCH(ctx, DepthwiseConv2dBackwardWeight, dyp, xp, p.N, g, p.Coutg, dwp);
  }
  // [dw32: float32, float16 only][col: T][ys: T]
  const int64_t acc_floats = kF32<T> ? 0 : dw_numel;
  Scratch s(ctx->dev, acc_floats * sizeof(float) + (p.col_floats + p.ys_floats) * sizeof(T));
  float* acc = kF32<T> ? reinterpret_cast<float*>(dwp) : s.at<float>(0);
  T* col = s.at<T>(acc_floats * sizeof(float));
  T* ys = col + p.col_floats;
  if (!kF32<T>) ctx->dev->Memset0(acc, dw_numel * sizeof(float));
  const int64_t xstep = g.C * g.H * g.W;
  for (int64_t n0 = 0; n0 < p.N; n0 += p.nb) {
    const int64_t nb = std::min(p.nb, p.N - n0);
    const T* dyn = dyp + n0 * p.Cout * p.P;
    if (nb > 1) MS_DISPATCH(ctx, ConvGather, dyn, nb, p.Cout, p.P, ys);
    for (int64_t r0 = 0; r0 < g.OH; r0 += p.rows) {
      const int64_t rows = std::min(p.rows, g.OH - r0), cols = nb * rows * g.OW;
      const T* B = xp + n0 * xstep;
      int64_t ldb = p.P;
      if (!p.direct) {
        MS_DISPATCH(ctx, Im2Col, B, nb, g, r0, rows, col);
        B = col;
        ldb = cols;
      }
      const T* D = nb == 1 ? dyn + r0 * g.OW : ys;
      const int64_t ldd = nb == 1 ? p.P : cols;
      // dw_k += dy_k col_k^T
      for (int64_t k = 0; k < p.groups; k++)
        MS_DISPATCH(ctx, Gemm, false, true, p.Coutg, p.Rg, cols, 1.f, D + k * p.Coutg * ldd,
                    ldd, B + k * p.Rg * ldb, ldb, 1.f, acc + k * p.Coutg * p.Rg, p.Rg);
    }
  }
  if (!kF32<T>) MS_DISPATCH(ctx, Cast, DType::kFloat32, DType::kFloat16, acc, dwp, dw_numel);
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
  // Checked: a wrapped size would pass the check below and send the kernels out of bounds.
  const int64_t eh = AddSize(MulSize(KH - 1, g.DH, op, "dilated kernel height"), 1, op,
                             "dilated kernel height");
  const int64_t ew = AddSize(MulSize(KW - 1, g.DW, op, "dilated kernel width"), 1, op,
                             "dilated kernel width");
  const int64_t ph = AddSize(AddSize(g.H, g.PT, op, "padded height"), g.PB, op, "padded height");
  const int64_t pw = AddSize(AddSize(g.W, g.PL, op, "padded width"), g.PR, op, "padded width");
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
  CheckFloat(op, x, "x");
  CheckFloat(op, w, "w");
  CheckSameDevice(op, x, w);
  const Candidates c = PlanCandidates(op, x.device(), x.shape(), w.shape(), stride, padding,
                                      dilation, groups, /*wgrad=*/false, IsHalf(x));
  const ConvPlan& p = c.plans[0];
  if (b) {
    CheckFloat(op, *b, "b");
    CheckSameDevice(op, x, *b);
    MS_CHECK(b->ndim() == 1 && b->shape(0) == p.Cout,
             op << ": b has shape " << ShapeStr(b->shape()) << ", expected (" << p.Cout
                << ",) for w " << ShapeStr(w.shape()));
  }
  const bool half = NativeHalf(p, {&x, &w, b ? &*b : nullptr});
  if (!half && (IsHalf(x) || IsHalf(w) || IsHalf(b)))
    return ToHalf(Conv2d(ToF32(x), ToF32(w), ToF32(b), stride, padding, dilation, groups));
  Tensor y({p.N, p.Cout, p.g.OH, p.g.OW}, x.device(), x.dtype());
  if (y.numel() == 0) return y;
  const bool has_b = b.has_value();
  TensorRef xr = x.ref(), wr = w.ref(), yr = y.ref(), br = has_b ? b->ref() : TensorRef();
  std::vector<BlockPtr> reads{x.block(), w.block()};
  if (has_b) reads.push_back(b->block());
  x.device()->Exec(
      [=](Context* ctx) {
        RunTuned(ctx, c.key, c.names, [&](Context* cx, int i) {
          FloatSwitch(yr.dtype, [&](auto tag) {  // every operand float16, or float32
            using T = decltype(tag);
            ConvForward(cx, c.plans[i], xr.data<T>(), wr.data<T>(),
                        has_b ? br.data<T>() : nullptr, yr.mutable_data<T>());
          });
        });
      },
      reads, {y.block()}, "Conv2d");
  return y;
}

Tensor Conv2dBackwardData(const Tensor& dy, const Tensor& w, const Shape& x_shape,
                          const Ints& stride, const Ints& padding, const Ints& dilation,
                          int64_t groups) {
  const char* op = "conv2d_backward_data";
  CheckFloat(op, dy, "dy");
  CheckFloat(op, w, "w");
  CheckSameDevice(op, dy, w);
  const Candidates c = PlanCandidates(op, w.device(), x_shape, w.shape(), stride, padding,
                                      dilation, groups, /*wgrad=*/false, IsHalf(dy));
  const ConvPlan& p = c.plans[0];
  const Shape y_shape{p.N, p.Cout, p.g.OH, p.g.OW};
  MS_CHECK(dy.shape() == y_shape, op << ": dy has shape " << ShapeStr(dy.shape())
                                     << ", expected " << ShapeStr(y_shape) << " for x "
                                     << ShapeStr(x_shape) << " and w " << ShapeStr(w.shape()));
  const bool half = NativeHalf(p, {&dy, &w});
  if (!half && (IsHalf(dy) || IsHalf(w)))
    return ToHalf(Conv2dBackwardData(ToF32(dy), ToF32(w), x_shape, stride, padding, dilation,
                                     groups));
  Tensor dx(x_shape, dy.device(), dy.dtype());
  if (dx.numel() == 0) return dx;
  TensorRef dyr = dy.ref(), wr = w.ref(), dxr = dx.ref();
  dy.device()->Exec(
      [=](Context* ctx) {
        RunTuned(ctx, c.key, c.names, [&](Context* cx, int i) {
          FloatSwitch(dxr.dtype, [&](auto tag) {
            using T = decltype(tag);
            ConvBackwardData(cx, c.plans[i], dyr.data<T>(), wr.data<T>(),
                             dxr.mutable_data<T>(), dxr.numel());
          });
        });
      },
      {dy.block(), w.block()}, {dx.block()}, "Conv2dBackwardData");
  return dx;
}

Tensor Conv2dBackwardWeight(const Tensor& dy, const Tensor& x, const Shape& w_shape,
                            const Ints& stride, const Ints& padding, const Ints& dilation,
                            int64_t groups) {
  const char* op = "conv2d_backward_weight";
  CheckFloat(op, dy, "dy");
  CheckFloat(op, x, "x");
  CheckSameDevice(op, dy, x);
  const Candidates c = PlanCandidates(op, x.device(), x.shape(), w_shape, stride, padding,
                                      dilation, groups, /*wgrad=*/true, IsHalf(dy));
  const ConvPlan& p = c.plans[0];
  const Shape y_shape{p.N, p.Cout, p.g.OH, p.g.OW};
  MS_CHECK(dy.shape() == y_shape, op << ": dy has shape " << ShapeStr(dy.shape())
                                     << ", expected " << ShapeStr(y_shape) << " for x "
                                     << ShapeStr(x.shape()) << " and w " << ShapeStr(w_shape));
  const bool half = NativeHalf(p, {&dy, &x});
  if (!half && (IsHalf(dy) || IsHalf(x)))
    return ToHalf(Conv2dBackwardWeight(ToF32(dy), ToF32(x), w_shape, stride, padding, dilation,
                                       groups));
  Tensor dw(w_shape, x.device(), x.dtype());
  TensorRef dyr = dy.ref(), xr = x.ref(), dwr = dw.ref();
  x.device()->Exec(
      [=](Context* ctx) {
        RunTuned(ctx, c.key, c.names, [&](Context* cx, int i) {
          FloatSwitch(dwr.dtype, [&](auto tag) {
            using T = decltype(tag);
            ConvBackwardWeight(cx, c.plans[i], dyr.data<T>(), xr.data<T>(),
                               dwr.mutable_data<T>(), dwr.numel());
          });
        });
      },
      {dy.block(), x.block()}, {dw.block()}, "Conv2dBackwardWeight");
  return dw;
}

Tensor Conv2dBackwardBias(const Tensor& dy) {
  const char* op = "conv2d_backward_bias";
  CheckFloat(op, dy, "dy");
  MS_CHECK(dy.ndim() == 4, op << ": dy must be 4-D (N, Cout, OH, OW), got shape "
                              << ShapeStr(dy.shape()));
  const int64_t N = dy.shape(0), C = dy.shape(1), HW = dy.shape(2) * dy.shape(3);
  Tensor db({C}, dy.device(), dy.dtype());
  TensorRef dyr = dy.ref(), dbr = db.ref();
  dy.device()->Exec(
      [=](Context* ctx) {
        FloatSwitch(dyr.dtype, [&](auto tag) {
          using T = decltype(tag);
          MS_DISPATCH(ctx, ConvBiasGrad, dyr.data<T>(), N, C, HW, dbr.mutable_data<T>());
        });
      },
      {dy.block()}, {db.block()}, "Conv2dBackwardBias");
  return db;
}

std::string Conv2dPath(const Device* dev, const Shape& x_shape, const Shape& w_shape,
                       const Ints& stride, const Ints& padding, const Ints& dilation,
                       int64_t groups, bool weight_grad) {
  return PlanName(MakePlan("conv2d", x_shape, w_shape, stride, padding, dilation, groups,
                           weight_grad, DefaultStyle(dev)),
                  false);
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
