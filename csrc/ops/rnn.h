// Fused LSTM cell on Tensors (kernels/rnn.h has the equations): the elementwise part of one
// step, from the gate pre-activations z (n, 4H) and the previous cell state c0 (n, H, or none:
// zeros), float32 or float16.
#pragma once

#include <optional>
#include <tuple>
#include <utility>

#include "core/tensor.h"

namespace minisinga {
namespace ops {

// Returns (h, c, act): the next hidden and cell states (n, H) and the activated gates (n, 4H)
// that the backward reads.
std::tuple<Tensor, Tensor, Tensor> LstmCell(const Tensor& z, const std::optional<Tensor>& c0);
// Returns (dz, dc0) from the forward's act and c (and c0) and the gradients dh, dc of h and c;
// dc0 is none without c0.
std::pair<Tensor, std::optional<Tensor>> LstmCellBackward(const Tensor& act,
                                                         const std::optional<Tensor>& c0,
                                                         const Tensor& c, const Tensor& dh,
                                                         const Tensor& dc);

}  // namespace ops
}  // namespace minisinga
