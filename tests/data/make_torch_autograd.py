"""Makes torch_autograd.npz, PyTorch's forward values and input gradients for the autograd
operators on non-default attributes and odd inputs, which tests/test_torch_parity_autograd.py
checks minisinga against (run once where torch is installed; the output is committed, so the
test needs no torch):

    python tests/data/make_torch_autograd.py

Every case is a function of a few float inputs, computed by torch in float64. All inputs and
upstream gradients are float16-representable (rounded through float16 first), so the test
feeds the same values to minisinga in float32 and, for some cases, in float16. For case
`name` the npz holds `name/x0`, `name/x1`, ... (the inputs, float32), `name/dy` (a random,
non-ones upstream gradient), `name/y` (torch's output) and `name/g0`, `name/g1`, ... (torch's
gradient of sum(y * dy) with respect to each input). The cases: broadcasting binary ops (size-1
dims in the middle, rank differences, a 0-d operand), one tensor used twice and a node with two
consumers, values exactly at the kinks of relu / abs / leaky relu / elu / selu / clip, reductions
on negative axes with ties, softmax and log-softmax on every axis and with large logits,
softmax cross-entropy, batched and broadcast matmul, gemm with both transposes, convolution and
pooling with rectangular / dilated / grouped / padded geometry and ties, and the layout ops
(pad, gather, concat, split, transpose, expand, tile, upsample, where, scatter, depth-to-space),
and GELU exact and tanh-approximated.
`bn/...` holds a training-mode batch norm with momentum 0.3 and eps 1e-3: its inputs, output,
gradients and the running statistics before and after.
"""

import os

import numpy as np
import torch
import torch.nn.functional as TF

HERE = os.path.dirname(os.path.abspath(__file__))
G = np.random.default_rng(20240611)


def h(a):
    """a as float32 values that float16 represents exactly."""
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def rn(*shape, scale=1.0):
    return h(G.standard_normal(shape) * scale)


def pos(*shape):
    return h(G.random(shape) + 0.5)


def distinct(*shape):
    n = int(np.prod(shape))
    return h((G.permutation(n).reshape(shape) - n / 2) * 0.125)


KINK = h([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
BIG = h([[1000.0, 0.0, -1000.0], [-30.0, -30.0, 0.0]])
TIES = h([[1.0, 3.0, 3.0, 0.5], [2.0, 2.0, 2.0, 2.0], [-1.0, 4.0, -1.0, 4.0]])
TIES_POOL = h([[[[1, 2, 2, 1], [2, 0, 0, 2], [1, 2, 2, 1], [0, 0, 0, 0]]]])
COND = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], np.float32)
SOFT = h([[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]])


def softmax_ce(x, t):
    return TF.cross_entropy(x, t)


def weighted_split(x, axis, parts):
    return torch.cat([p * float(i + 2) for i, p in enumerate(torch.split(x, parts, axis))], axis)


def chain(x, w):
    h1 = x * w
    return torch.tanh(h1 + w) * w + h1 * h1


CASES = {
    # binary ops: the gradient summed back to each input's shape
    "add_mid1": (torch.add, [rn(2, 1, 3), rn(2, 4, 3)]),
    "sub_rank": (torch.sub, [rn(4, 1, 1), rn(3, 5)]),
    "mul_rank": (torch.mul, [rn(5), rn(2, 3, 1)]),
    "div_both1": (torch.div, [rn(1, 3, 1), pos(2, 1, 4)]),
    "add_0d": (torch.add, [rn(2, 3), rn()]),
    "maximum_bcast": (torch.maximum, [distinct(2, 1, 3), distinct(4, 1) + 0.03125]),
    "minimum_bcast": (torch.minimum, [distinct(3, 1), distinct(1, 4) + 0.03125]),
    "pow_bcast": (torch.pow, [pos(2, 1, 3), rn(4, 1)]),
    # one tensor used twice, a node feeding two consumers, a weight at several depths
    "x_times_x": (lambda x: x * x, [rn(3, 4)]),
    "add_x_x": (lambda x: x + x, [rn(3, 4)]),
    "div_x_x": (lambda x: x / x, [pos(3, 4)]),
    "matmul_x_xT": (lambda x: x @ x.T, [rn(3, 4)]),
    "pow_x_x": (lambda x: x ** x, [pos(5)]),
    "fanout": (lambda x: torch.tanh(x) * torch.tanh(x) + torch.sigmoid(torch.tanh(x)),
               [rn(2, 3)]),
    "weight_at_depths": (chain, [rn(4), rn(4)]),
    # values exactly at the kinks
    "relu_kink": (torch.relu, [KINK]),
    "abs_kink": (torch.abs, [KINK]),
    "leakyrelu_kink": (lambda x: TF.leaky_relu(x, 0.3), [KINK]),
    "leakyrelu_neg_slope": (lambda x: TF.leaky_relu(x, -0.3), [KINK]),
    "elu_kink": (lambda x: TF.elu(x, 0.7), [KINK]),
    "selu_custom": (lambda x: 0.5 * torch.where(x > 0, x, 2.0 * (torch.exp(x) - 1)), [KINK]),
    "clip_bounds": (lambda x: torch.clamp(x, -0.5, 1.0), [KINK]),
    "clip_point": (lambda x: torch.clamp(x, 0.5, 0.5), [KINK]),
    "softsign_kink": (TF.softsign, [KINK]),
    "softplus_big": (TF.softplus, [BIG]),
    "sigmoid_big": (torch.sigmoid, [BIG]),
    # reductions
    "reduce_sum_neg": (lambda x: x.sum((0, 2)), [rn(2, 3, 4)]),
    "reduce_mean_mixed": (lambda x: x.mean((0, 1), keepdim=True), [rn(2, 3, 4)]),
    "reduce_max_ties": (lambda x: x.amax(1), [TIES]),
    "reduce_min_ties": (lambda x: x.amin(0, keepdim=True), [TIES]),
    # softmax family
    "softmax_axis0": (lambda x: torch.softmax(x, 0), [rn(3, 4)]),
    "softmax_mid": (lambda x: torch.softmax(x, 1), [rn(2, 3, 4)]),
    "softmax_first": (lambda x: torch.softmax(x, 0), [rn(2, 3, 4)]),
    "log_softmax_mid": (lambda x: torch.log_softmax(x, 1), [rn(2, 3, 4)]),
    "softmax_big": (lambda x: torch.softmax(x, 1), [BIG]),
    "log_softmax_big": (lambda x: torch.log_softmax(x, 1), [BIG]),
    "sce_soft": (lambda x: softmax_ce(x, torch.tensor(SOFT, dtype=torch.float64)), [rn(2, 3)]),
    "sce_batch1": (lambda x: softmax_ce(x, torch.tensor([2])), [rn(1, 3)]),
    "sce_big": (lambda x: softmax_ce(x, torch.tensor([0, 1])), [BIG]),
    # matrix products
    "mm_a2_bB": (torch.matmul, [rn(3, 4), rn(2, 4, 5)]),
    "mm_bcast_mid": (torch.matmul, [rn(2, 1, 3, 4), rn(1, 3, 4, 2)]),
    "mm_rank_diff": (torch.matmul, [rn(2, 3, 3, 4), rn(3, 4, 2)]),
    "mm_shared_4d": (torch.matmul, [rn(2, 2, 3, 4), rn(4, 2)]),
    "gemm_tAtB_c11": (lambda a, b, c: -0.5 * a.T @ b.T + 0.25 * c,
                      [rn(4, 3), rn(5, 4), rn(1, 1)]),
    # convolution and pooling
    "conv_rect": (lambda x, w, b: TF.conv2d(x, w, b, (2, 1), (1, 2)),
                  [rn(2, 3, 7, 6), rn(4, 3, 3, 2, scale=0.5), rn(4)]),
    "conv_dil_asym": (lambda x, w: TF.conv2d(x, w, None, 1, (2, 1), (2, 1)),
                      [rn(1, 2, 6, 5), rn(3, 2, 3, 3, scale=0.5)]),
    "conv_groups3": (lambda x, w: TF.conv2d(x, w, None, 2, 1, 1, 3),
                     [rn(1, 6, 5, 5), rn(9, 2, 3, 3, scale=0.5)]),
    "conv_x_twice": (lambda x: TF.conv2d(x, x, None, 1, 1), [rn(2, 2, 3, 3)]),
    "maxpool_rect": (lambda x: TF.max_pool2d(x, (2, 3), (1, 2), (1, 1)), [distinct(1, 2, 5, 7)]),
    "avgpool_rect": (lambda x: TF.avg_pool2d(x, (3, 2), (2, 1), (1, 0)), [rn(1, 2, 5, 7)]),
    "avgpool_excl": (lambda x: TF.avg_pool2d(x, (3, 2), (2, 1), (1, 1), count_include_pad=False),
                     [rn(1, 2, 5, 7)]),
    "maxpool_ties": (lambda x: TF.max_pool2d(x, 2, 1), [TIES_POOL]),
    "maxpool_ties_flat": (lambda x: TF.max_pool2d(x, 3, 1), [np.zeros((1, 1, 4, 4), np.float32)]),
    "maxpool_pad_negative": (lambda x: TF.max_pool2d(x, 3, 2, 1),
                             [-1 - np.abs(distinct(1, 1, 4, 4))]),
    "maxpool1d": (lambda x: TF.max_pool1d(x, 3, 2, 1), [distinct(2, 3, 7)]),
    "avgpool1d": (lambda x: TF.avg_pool1d(x, 2, 3), [rn(2, 3, 8)]),
    # layout and indexing
    "pad_constant": (lambda x: TF.pad(x, (2, 1, 1, 2), value=-1.5), [rn(1, 2, 4, 3)]),
    "pad_reflect": (lambda x: TF.pad(x, (2, 1, 1, 2), mode="reflect"), [rn(1, 2, 4, 3)]),
    "pad_edge": (lambda x: TF.pad(x, (2, 1, 1, 2), mode="replicate"), [rn(1, 2, 4, 3)]),
    "gather_rep_neg": (lambda x: x[:, [1, 1, 3, 3, 1]], [rn(3, 4, 2)]),
    "gather_2d_idx": (lambda x: x[..., torch.tensor([[0, 1], [1, 1], [0, 0]])], [rn(3, 4, 2)]),
    "concat_neg": (lambda a, b: torch.cat([a, b], -2), [rn(2, 3, 4), rn(2, 1, 4)]),
    "concat_same": (lambda a: torch.cat([a, a, a], 0), [rn(2, 3)]),
    "split_neg": (lambda x: weighted_split(x, -2, [1, 3]), [rn(3, 4, 2)]),
    "split_one_used": (lambda x: torch.split(x, [1, 3], 1)[1] * 2.0, [rn(3, 4, 2)]),
    "transpose_negperm": (lambda x: x.permute(2, 0, 1), [rn(3, 4, 2)]),
    "expand_rank": (lambda x: x.expand(2, 3, 4, 5), [rn(3, 4, 1)]),
    "tile": (lambda x: x.repeat(2, 1, 3), [rn(3, 4, 2)]),
    "upsample": (lambda x: x.repeat_interleave(2, 1).repeat_interleave(3, 2), [rn(3, 4, 2)]),
    "where_big_cond": (lambda a, b: torch.where(torch.tensor(COND != 0), a, b),
                       [rn(4, 1), rn(2)]),
    "scatter": (lambda x, u: x.scatter(1, torch.tensor([[1, 0], [2, 0]]), u), [rn(2, 3), rn(2, 2)]),
    "depth_to_space_crd": (lambda x: TF.pixel_shuffle(x, 2), [rn(1, 8, 2, 3)]),
    "space_to_depth_crd": (lambda x: TF.pixel_unshuffle(x, 2), [rn(1, 2, 4, 6)]),
    "gelu": (TF.gelu, [rn(3, 5, scale=2.0)]),
    "gelu_tanh": (lambda x: TF.gelu(x, approximate="tanh"), [rn(3, 5, scale=2.0)]),
}


def run_case(fn, inputs):
    xs = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in inputs]
    y = fn(*xs)
    dy = h(G.standard_normal(tuple(y.shape)))
    grads = torch.autograd.grad(y, xs, torch.tensor(dy.astype(np.float64)), allow_unused=True)
    out = {"dy": dy, "y": y.detach().numpy().astype(np.float32)}
    for i, (a, g) in enumerate(zip(inputs, grads)):
        out[f"x{i}"] = np.asarray(a, np.float32)
        out[f"g{i}"] = (np.zeros(a.shape) if g is None else g.numpy()).astype(np.float32)
    return out


def batchnorm():
    x, s, b = rn(4, 3, 2, 5), rn(3), rn(3)
    rm, rv = rn(3), h(np.abs(G.standard_normal(3)) + 0.5)
    out = run_case(lambda *t: TF.batch_norm(t[0], torch.tensor(rm, dtype=torch.float64),
                                            torch.tensor(rv, dtype=torch.float64), t[1], t[2],
                                            True, 0.3, 1e-3), [x, s, b])
    trm, trv = torch.tensor(rm, dtype=torch.float64), torch.tensor(rv, dtype=torch.float64)
    TF.batch_norm(torch.tensor(x, dtype=torch.float64), trm, trv, None, None, True, 0.3, 1e-3)
    out.update(rm=rm, rv=rv, rm_after=trm.numpy().astype(np.float32),
               rv_after=trv.numpy().astype(np.float32))
    return out


def main():
    data = {}
    for name, (fn, inputs) in CASES.items():
        for k, v in run_case(fn, [h(a) for a in inputs]).items():
            data[f"{name}/{k}"] = v
    for k, v in batchnorm().items():
        data[f"bn/{k}"] = v
    path = os.path.join(HERE, "torch_autograd.npz")
    np.savez_compressed(path, **data)
    print(len(CASES), "cases,", os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
