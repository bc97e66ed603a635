// CPU pooling kernels: one OpenMP work item per plane, windows clipped to the image.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dispatch.h"
#include "kernels/pool.h"

namespace minisinga {
namespace kernels {
namespace cpu {

namespace {

// The window of output (oh, ow) clipped to the image: rows [h0, h1), columns [w0, w1).
struct Window {
  int64_t h0, h1, w0, w1;
  Window(const ConvGeom& g, int64_t oh, int64_t ow) {
    h0 = oh * g.SH - g.PT;
    w0 = ow * g.SW - g.PL;
    h1 = std::min(h0 + g.KH, g.H);
    w1 = std::min(w0 + g.KW, g.W);
    h0 = std::max<int64_t>(h0, 0);
    w0 = std::max<int64_t>(w0, 0);
  }
  int64_t count() const { return std::max<int64_t>(h1 - h0, 0) * std::max<int64_t>(w1 - w0, 0); }
};

inline float Divisor(const ConvGeom& g, const Window& win, bool count_include_pad) {
  return static_cast<float>(count_include_pad ? g.KH * g.KW : win.count());
}

}  // namespace

void MaxPool2d(Context*, const float* x, int64_t planes, const ConvGeom& g, float* y,
               int32_t* idx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (planes * P * g.KH * g.KW > MS_OMP_MIN)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float* xp = x + pl * HW;
    float* yp = y + pl * P;
    int32_t* ip = idx + pl * P;
    for (int64_t oh = 0; oh < g.OH; oh++) {
      for (int64_t ow = 0; ow < g.OW; ow++) {
        const Window win(g, oh, ow);
        float best = 0.f;
        int64_t arg = -1;
        for (int64_t h = win.h0; h < win.h1; h++) {
          for (int64_t w = win.w0; w < win.w1; w++) {
            const float v = xp[h * g.W + w];
            // The first maximum wins; the first NaN wins over numbers, as in numpy.
            if (arg < 0 || v > best || (std::isnan(v) && !std::isnan(best))) {
              best = v;
              arg = h * g.W + w;
            }
          }
        }
        yp[oh * g.OW + ow] = best;
        ip[oh * g.OW + ow] = static_cast<int32_t>(arg);
      }
    }
  }
}

void AvgPool2d(Context*, const float* x, int64_t planes, const ConvGeom& g,
               bool count_include_pad, float* y) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (planes * P * g.KH * g.KW > MS_OMP_MIN)
  for (int64_t pl = 0; pl < planes; pl++) {
    const float* xp = x + pl * HW;
    float* yp = y + pl * P;
    for (int64_t oh = 0; oh < g.OH; oh++) {
      for (int64_t ow = 0; ow < g.OW; ow++) {
        const Window win(g, oh, ow);
        float sum = 0.f;
        for (int64_t h = win.h0; h < win.h1; h++)
          for (int64_t w = win.w0; w < win.w1; w++) sum += xp[h * g.W + w];
        const float div = Divisor(g, win, count_include_pad);
        yp[oh * g.OW + ow] = div > 0 ? sum / div : 0.f;
      }
    }
  }
}

void MaxPool2dBackward(Context*, const float* dy, const int32_t* idx, int64_t planes,
                       const ConvGeom& g, float* dx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (planes * (P + HW) > MS_OMP_MIN)
  for (int64_t pl = 0; pl < planes; pl++) {
    float* dp = dx + pl * HW;
    const float* gp = dy + pl * P;
    const int32_t* ip = idx + pl * P;
    std::memset(dp, 0, sizeof(float) * HW);
    for (int64_t i = 0; i < P; i++)
      if (ip[i] >= 0 && ip[i] < HW) dp[ip[i]] += gp[i];
  }
}

void AvgPool2dBackward(Context*, const float* dy, int64_t planes, const ConvGeom& g,
                       bool count_include_pad, float* dx) {
  const int64_t HW = g.H * g.W, P = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (planes * P * g.KH * g.KW > MS_OMP_MIN)
  for (int64_t pl = 0; pl < planes; pl++) {
    float* dp = dx + pl * HW;
    const float* gp = dy + pl * P;
    std::memset(dp, 0, sizeof(float) * HW);
    for (int64_t oh = 0; oh < g.OH; oh++) {
      for (int64_t ow = 0; ow < g.OW; ow++) {
        const Window win(g, oh, ow);
        const float div = Divisor(g, win, count_include_pad);
        if (div <= 0) continue;
        const float v = gp[oh * g.OW + ow] / div;
        for (int64_t h = win.h0; h < win.h1; h++)
          for (int64_t w = win.w0; w < win.w1; w++) dp[h * g.W + w] += v;
      }
    }
  }
}

}  // namespace cpu
}  // namespace kernels
}  // namespace minisinga
