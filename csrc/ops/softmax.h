// Softmax family on Tensors: softmax / log_softmax along any axis with their backward,
// softmax cross-entropy from logits and cross-entropy from probabilities with theirs.
#pragma once

#include <utility>

#include "core/tensor.h"
#include "kernels/softmax.h"

namespace minisinga {
namespace ops {

// float32 / float16, numerically stable (the max is subtracted first).
Tensor Softmax(const Tensor& x, int64_t axis);
Tensor LogSoftmax(const Tensor& x, int64_t axis);
// Gradients from the forward output y and the output gradient dy.
Tensor SoftmaxBackward(const Tensor& y, const Tensor& dy, int64_t axis);
Tensor LogSoftmaxBackward(const Tensor& y, const Tensor& dy, int64_t axis);

// logits (N, C) float; target int32 labels (N,) or (N, C) soft targets of logits' dtype.
// Returns (loss per sample (N,), prob (N, C)). Labels are range-checked here when the device
// is not recording a graph; inside a recorded graph a bad label gives loss NaN.
std::pair<Tensor, Tensor> SoftmaxCrossEntropy(const Tensor& logits, const Tensor& target);
// dlogits = (prob - onehot(target)) * dloss[:, None]; dloss is (N,).
Tensor SoftmaxCrossEntropyBackward(const Tensor& prob, const Tensor& target,
                                   const Tensor& dloss);
// loss (N,) = -sum_j t * log(max(prob, 1e-12)) from probabilities (N, C).
Tensor CrossEntropy(const Tensor& prob, const Tensor& target);
// dprob = -t / max(prob, 1e-12) * dloss[:, None].
Tensor CrossEntropyBackward(const Tensor& prob, const Tensor& target, const Tensor& dloss);

}  // namespace ops
}  // namespace minisinga
