"""The autograd engine: the training switch, backward as a generator, accumulation."""

import threading

import numpy as np
import pytest

from minisinga import autograd as ag
from minisinga import tensor


def param(a):
    return tensor.Tensor(data=np.asarray(a, np.float32), stores_grad=True)


def test_training_switch_module_attribute_and_context():
    ag.training = False
    assert ag.training is False and not ag.is_training()
    ag.training = True
    assert ag.training is True
    with ag.no_grad():
        assert ag.training is False
    assert ag.training is True
    with ag.train_mode(False):
        x = param([1.0, 2.0])
        assert ag.relu(x).creator is None  # nothing recorded
    ag.training = False


def test_training_flag_is_one_for_the_process():
    """As SINGA's autograd.training: a model put in training mode in one thread trains in
    another (a server thread, a data-parallel worker)."""
    seen = []
    with ag.train_mode(True):
        t = threading.Thread(target=lambda: seen.append(ag.training))
        t.start()
        t.join()
    assert seen == [True]


def test_shared_node_gradients_accumulate():
    w = param([1.0, -2.0, 3.0])
    with ag.train_mode():
        h = ag.mul(w, w)              # used twice below
        y = ag.reduce_sum(ag.add(h, ag.mul(h, 3.0)), None, False)
    g = ag.gradients(y)[w].to_numpy()
    np.testing.assert_allclose(g, 8 * np.array([1.0, -2.0, 3.0]))  # d(4 w^2)/dw


def test_backward_twice_does_not_double_count():
    w = param([0.5, 1.5])
    with ag.train_mode():
        y = ag.reduce_sum(ag.mul(w, w), None, False)
    g1 = ag.gradients(y)[w].to_numpy()
    g2 = ag.gradients(y)[w].to_numpy()
    np.testing.assert_allclose(g1, g2)
    np.testing.assert_allclose(g1, [1.0, 3.0])


def test_backward_yields_each_param_as_soon_as_final():
    # y = f2(w2 * f1(w1 * x)): w2's gradient is final before w1's is computed.
    x = tensor.Tensor(data=np.ones((2, 2), np.float32), requires_grad=False)
    w1, w2 = param(np.eye(2)), param(np.eye(2))
    w1.name, w2.name = "w1", "w2"
    with ag.train_mode():
        y = ag.reduce_sum(ag.matmul(ag.relu(ag.matmul(x, w1)), w2), None, False)
    order = [p.name for p, _ in ag.backward(y)]
    assert order == ["w2", "w1"]


def test_deep_chain_needs_no_recursion():
    w = param([1.0])
    with ag.train_mode():
        y = w
        for _ in range(3000):
            y = ag.add(y, 0.001)
        y = ag.reduce_sum(y, None, False)
    np.testing.assert_allclose(ag.gradients(y)[w].to_numpy(), [1.0])


def test_tensor_operators_are_differentiable():
    a = param([[1.0, 2.0], [3.0, 4.0]])
    b = param([[0.5, -1.0], [2.0, 1.0]])
    with ag.train_mode():
        y = ag.reduce_sum((a @ b) * 2.0 - a / b + (-a) ** 2, None, False)
    grads = ag.gradients(y)
    assert a in grads and b in grads
    an, bn = a.to_numpy().astype(np.float64), b.to_numpy().astype(np.float64)
    ga = 2 * np.ones((2, 2)) @ bn.T - 1 / bn + 2 * an
    np.testing.assert_allclose(grads[a].to_numpy(), ga, rtol=1e-5)


def test_backward_without_creator_is_a_clear_error():
    with pytest.raises(ValueError, match="no creator"):
        list(ag.backward(param([1.0])))


def test_backward_dy_shape_checked():
    w = param([1.0, 2.0])
    with ag.train_mode():
        y = ag.mul(w, 2.0)
    with pytest.raises(ValueError, match="dy has shape"):
        list(ag.backward(y, tensor.ones((3,))))


def test_unused_output_of_multi_output_op_gets_zero_gradient():
    w = param(np.arange(6, dtype=np.float32).reshape(2, 3))
    with ag.train_mode():
        a, b = ag.split(w, 1, [1, 2])
        y = ag.reduce_sum(b, None, False)
    np.testing.assert_allclose(ag.gradients(y)[w].to_numpy(), [[0, 1, 1], [0, 1, 1]])


def test_unused_input_gradients_are_not_computed():
    # The input images need no gradient (not a parameter, no creator): conv and matmul skip
    # computing it, which the recorded graph shows; parameter gradients are unchanged.
    from minisinga import device

    rng = np.random.default_rng(0)
    dev = device.create_cpu_device()
    xa = rng.standard_normal((2, 1, 6, 6)).astype(np.float32)
    w1a = rng.standard_normal((3, 1, 3, 3)).astype(np.float32)
    w2a = rng.standard_normal((36, 4)).astype(np.float32)

    def run(x_is_param, graph):
        x = tensor.Tensor(data=xa, device=dev, stores_grad=x_is_param)
        w1 = tensor.Tensor(data=w1a, device=dev, stores_grad=True)
        w2 = tensor.Tensor(data=w2a, device=dev, stores_grad=True)
        dev.EnableGraph(graph)
        with ag.train_mode(True):
            h = ag.reshape(ag.relu(ag.conv2d(x, w1, padding=1)), (2, 3 * 36))
            y = ag.matmul(ag.reshape(h, (6, 36)), w2)
            grads = {id(p): g for p, g in ag.backward(ag.reduce_sum(y))}
        names = dev.graph_node_names() if graph else []
        dev.EnableGraph(False)
        if graph:
            dev.RunGraph(True)
            dev.ResetGraph()
        return [grads.get(id(t)) for t in (x, w1, w2)], names

    (gx, g1, g2), names = run(False, True)
    assert gx is None
    assert "Conv2dBackwardData" not in names and "Conv2dBackwardWeight" in names
    (px, p1, p2), names = run(True, True)
    assert "Conv2dBackwardData" in names
    (ex, e1, e2), _ = run(True, False)
    np.testing.assert_allclose(g1.to_numpy(), p1.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(g2.to_numpy(), e2.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(px.to_numpy(), ex.to_numpy(), rtol=1e-6)
    assert px.shape == (2, 1, 6, 6)


def test_retain_graph_false_frees_saved_tensors_early():
    # The same gradients; lower peak memory (saved activations go back to the pool as the
    # backward pass reaches them); and a second backward is refused with a clear error.
    from minisinga import device

    rng = np.random.default_rng(1)
    xa = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    ws = [rng.standard_normal((8, c, 3, 3)).astype(np.float32) * 0.3 for c in (3, 8, 8, 8)]

    def run(retain):
        dev = device.create_cpu_device()
        x = tensor.Tensor(data=xa, device=dev)
        params = [tensor.Tensor(data=w, device=dev, stores_grad=True) for w in ws]
        with ag.train_mode(True):
            h = x
            for w in params:
                h = ag.relu(ag.conv2d(h, w, padding=1))
            y = ag.reduce_sum(h, None, False)
        dev.reset_peak()
        grads = {id(p): g.to_numpy() for p, g in ag.backward(y, retain_graph=retain)}
        return [grads[id(p)] for p in params], dev.memory_stats()["peak"], y

    kept, peak_kept, y_kept = run(True)
    freed, peak_freed, y_freed = run(False)
    for a, b in zip(kept, freed):
        np.testing.assert_array_equal(a, b)
    assert peak_freed < peak_kept, (peak_freed, peak_kept)
    ag.gradients(y_kept)  # retained: may run again
    with pytest.raises(RuntimeError, match="already back-propagated"):
        ag.gradients(y_freed)


def test_release_keeps_what_the_op_was_built_with():
    # A script may build an op once and call it at every step (SINGA style); freeing what
    # forward saved must leave what __init__ configured (here the labels) usable.
    labels = tensor.Tensor(data=np.array([1, 0], np.int32), requires_grad=False)
    ce = ag.SoftMaxCrossEntropy(labels)
    w = param(np.zeros((2, 3), np.float32))
    grads = []
    for _ in range(2):
        with ag.train_mode():
            loss = ce(w)
        grads.append({id(p): g.to_numpy() for p, g in ag.backward(loss, retain_graph=False)})
    assert ce.t is labels and ce.prob is None  # labels kept, saved probabilities freed
    np.testing.assert_array_equal(grads[0][id(w)], grads[1][id(w)])


def test_recording_holds_only_what_backward_reads():
    # After the forward pass, the recorded graph keeps an activation alive only where a
    # backward reads it: relu(a + b) * w keeps relu's output (its mask) and w and that
    # product's inputs, not a + b (nor a and b themselves: an add's gradient needs neither).
    from minisinga import device

    dev = device.create_cpu_device()
    n = 1 << 16  # 256 KiB per tensor
    rng = np.random.default_rng(0)
    w = tensor.Tensor(data=rng.standard_normal(n).astype(np.float32), device=dev,
                      stores_grad=True)
    with ag.train_mode(True):
        a = ag.mul(w, 2.0)
        b = ag.mul(w, 3.0)
        y = ag.reduce_sum(ag.mul(ag.relu(ag.add(a, b)), w), None, False)
    del a, b
    # w, relu's output (kept by both relu and the product) and y: three tensors, plus at
    # most y's one value; the sum a + b and the scaled copies of w went back to the pool.
    in_use = dev.memory_stats()["current"]
    assert in_use <= 2 * 4 * n + 4096, in_use
    grads = {id(p): g.to_numpy() for p, g in ag.backward(y)}
    x = w.to_numpy()
    np.testing.assert_allclose(grads[id(w)], np.where(5 * x > 0, 5 * x + 5 * x, 0),
                               rtol=1e-6)
