"""One harness for every autograd operator: forward against a numpy reference, gradient
against central finite differences of that reference in float64."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from minisinga import autograd, tensor


def numeric_grad(f: Callable[[np.ndarray], float], a: np.ndarray, h: float = 1e-4):
    """Central finite differences of scalar f at a (float64)."""
    a = a.astype(np.float64).copy()
    g = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = a[i]
        a[i] = old + h
        fp = f(a)
        a[i] = old - h
        fm = f(a)
        a[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def check_op(fn: Callable, ref: Callable, inputs: Sequence[np.ndarray], wrt=None,
             rtol: float = 1e-3, atol: float = 1e-4, grad_rtol: float = 1e-2,
             grad_atol: float = 1e-3, seed: int = 0, device=None):
    """fn(*Tensors) -> Tensor; ref(*float64 arrays) -> array. Checks forward and the gradients
    of the inputs listed in `wrt` (all float inputs by default), the Tensors on `device` (the
    default device if None)."""
    rng = np.random.default_rng(seed)
    ts = [tensor.Tensor(data=a, device=device, requires_grad=True,
                        stores_grad=a.dtype.kind == "f") for a in inputs]
    with autograd.train_mode():
        y = fn(*ts)
    ref64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in inputs]
    expected = np.asarray(ref(*ref64))
    got = y.to_numpy()
    assert got.shape == expected.shape, f"shape {got.shape} != expected {expected.shape}"
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)

    r = rng.standard_normal(expected.shape)
    assert y.device == ts[0].device, f"output on {y.device}, inputs on {ts[0].device}"
    dy = tensor.Tensor(data=r.astype(np.float32), device=y.device, requires_grad=False)
    grads = autograd.gradients(y, dy)
    wrt = [i for i, a in enumerate(inputs) if a.dtype.kind == "f"] if wrt is None else wrt
    for i in wrt:
        def f(a, i=i):
            args = list(ref64)
            args[i] = a
            return float((np.asarray(ref(*args)) * r).sum())

        num = numeric_grad(f, ref64[i])
        assert ts[i] in grads, f"no gradient for input {i}"
        assert grads[ts[i]].device == ts[i].device, f"gradient of input {i} on another device"
        np.testing.assert_allclose(grads[ts[i]].to_numpy(), num, rtol=grad_rtol, atol=grad_atol,
                                   err_msg=f"gradient of input {i}")
