// Fused LSTM and GRU cells on Tensors (kernels/rnn.h has the equations): the elementwise part
// of one step, float32 or float16. LSTM: from the gate pre-activations z (n, 4H) and the
// previous cell state c0 (n, H, or none: zeros). GRU: from the input side's pre-activations
// gx (n, 3H), the hidden side's gh = h Wh + bh (n, 3H) and the previous state h (n, H).
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

// Returns (y, act): the next state (n, H) and what the backward reads (n, 4H).
std::pair<Tensor, Tensor> GruCell(const Tensor& gx, const Tensor& gh, const Tensor& h);
// Returns (dgx, dgh, dh) from act, h and the gradient dy of y.
std::tuple<Tensor, Tensor, Tensor> GruCellBackward(const Tensor& act, const Tensor& h,
                                                   const Tensor& dy);

}  // namespace ops
}  // namespace minisinga
