// Softmax family: softmax / log_softmax along the middle axis of a contiguous
// (outer, d, inner) view and their backward; softmax cross-entropy on (n, c) logits and
// cross-entropy on (n, c) probabilities, with targets given as int32 labels (n,) or as
// (n, c) soft targets of the same dtype as the values. All compute in float32.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace minisinga {

// Probabilities are clamped to at least this before a log or a division (cross_entropy).
constexpr float kCrossEntropyEps = 1e-12f;

namespace kernels {
namespace cpu {
// y = softmax(x) or, when `log`, log_softmax(x); dt is float32 or float16.
void Softmax(Context* ctx, bool log, DType dt, const void* x, void* y, int64_t outer,
             int64_t d, int64_t inner);
// From the forward output y: softmax dx = y * (dy - sum(dy * y)),
// log_softmax dx = dy - exp(y) * sum(dy).
void SoftmaxBackward(Context* ctx, bool log, DType dt, const void* y, const void* dy, void* dx,
                     int64_t outer, int64_t d, int64_t inner);
// prob = softmax(logits), loss[i] = -sum_j t[i, j] * log prob[i, j]; a label outside [0, c)
// gives loss NaN. (Only a graph replay on a GPU computes with such a label: eagerly the op
// raises first, a CPU replay stops at the op's recorded label check; the gradients' rows are
// then zero, so the parameters stay finite until the error is read.)
void SoftmaxCrossEntropy(Context* ctx, DType dt, const void* logits, const void* target,
                         bool labels, void* loss, void* prob, int64_t n, int64_t c);
// dlogits = (prob - t) * dloss[:, None]; a row with a label outside [0, c) becomes zero.
void SoftmaxCrossEntropyBackward(Context* ctx, DType dt, const void* prob, const void* target,
                                 bool labels, const void* dloss, void* dlogits, int64_t n,
                                 int64_t c);
// loss[i] = -sum_j t[i, j] * log(max(prob[i, j], eps)); a label outside [0, c) gives NaN.
void CrossEntropy(Context* ctx, DType dt, const void* prob, const void* target, bool labels,
                  void* loss, int64_t n, int64_t c);
// dprob = -t / max(prob, eps) * dloss[:, None]; a row with a bad label becomes zero.
void CrossEntropyBackward(Context* ctx, DType dt, const void* prob, const void* target,
                          bool labels, const void* dloss, void* dprob, int64_t n, int64_t c);
}  // namespace cpu
namespace cuda {
void Softmax(Context* ctx, bool log, DType dt, const void* x, void* y, int64_t outer,
             int64_t d, int64_t inner);
void SoftmaxBackward(Context* ctx, bool log, DType dt, const void* y, const void* dy, void* dx,
                     int64_t outer, int64_t d, int64_t inner);
void SoftmaxCrossEntropy(Context* ctx, DType dt, const void* logits, const void* target,
                         bool labels, void* loss, void* prob, int64_t n, int64_t c);
void SoftmaxCrossEntropyBackward(Context* ctx, DType dt, const void* prob, const void* target,
                                 bool labels, const void* dloss, void* dlogits, int64_t n,
                                 int64_t c);
void CrossEntropy(Context* ctx, DType dt, const void* prob, const void* target, bool labels,
                  void* loss, int64_t n, int64_t c);
void CrossEntropyBackward(Context* ctx, DType dt, const void* prob, const void* target,
                          bool labels, const void* dloss, void* dprob, int64_t n, int64_t c);
}  // namespace cuda
}  // namespace kernels

}  // namespace minisinga
