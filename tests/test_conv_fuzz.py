"""Every convolution plan on random geometries: with autotuning on, each pass (forward, data
gradient, weight gradient) of a random convolution lists the plans it can run (the device's
own, the GPU's Winograd F(2x2) and F(4x4) / strided-batched / chunked plans, the CPU's); each
plan in turn is forced (`_core._force_conv_plan`) and must match the float64 numpy reference.
On the CPU the GPU's plans run on the CPU kernels; on a CUDA device (or the emulator) every
plan runs there."""

import re

import numpy as np
import pytest
from conftest import core_tensor
from test_conv import conv_grads_ref, conv_ref, out_size

from minisinga import _core, device

PASSES = ("conv2d", "conv2d_backward_data", "conv2d_backward_weight")


@pytest.fixture
def tuning(autotune):
    """Autotuning on (conftest's fixture), and no plan left forced afterwards."""
    yield
    _core._force_conv_plan("")


def geometry(r):
    """A random valid convolution: (x shape, w shape, stride, padding, dilation, groups).
    Weighted towards the shapes with several plans: Winograd's (3x3, stride 1, >= 16
    channels), pointwise, grouped and depthwise, strided and dilated, one image."""
    kind = r.choice(["winograd", "pointwise", "general", "general", "grouped"])
    n = int(r.integers(1, 5))
    if kind == "winograd":
        c, cout = int(r.integers(16, 21)), int(r.integers(16, 21))
        k, stride, dil, groups = (3, 3), (1, 1), (1, 1), 1
        pad = tuple(int(v) for v in r.integers(0, 3, 4))
    elif kind == "pointwise":
        c, cout = int(r.integers(1, 12)), int(r.integers(1, 12))
        k, dil, groups, pad = (1, 1), (1, 1), 1, (0, 0, 0, 0)
        stride = (1, 1) if r.random() < 0.6 else tuple(int(v) for v in r.integers(1, 3, 2))
    else:
        groups = 1 if kind == "general" else int(r.integers(2, 4))
        per = int(r.integers(1, 4))
        c = groups * (1 if kind == "grouped" and r.random() < 0.5 else per)  # or depthwise
        cout = groups * int(r.integers(1, 4))
        k = tuple(int(v) for v in r.integers(1, 5, 2))
        stride = tuple(int(v) for v in r.integers(1, 4, 2))
        dil = tuple(int(v) for v in r.integers(1, 3, 2))
        pad = tuple(int(v) for v in r.integers(0, 3, 4))
    while True:  # an input at least as large as the dilated kernel minus the padding
        h, w = (int(v) for v in r.integers(1, 15, 2))
        oh = out_size(h, k[0], stride[0], pad[0], pad[1], dil[0])
        ow = out_size(w, k[1], stride[1], pad[2], pad[3], dil[1])
        if oh >= 1 and ow >= 1:
            break
    return (n, c, h, w), (cout, c // groups) + k, stride, pad, dil, groups


def run_pass(op, dev, x, w, dy, xs, ws, kw):
    """One pass on `dev`, its operands as numpy arrays (float32 or float16)."""
    if op == "conv2d":
        return _core.conv2d(core_tensor(x, dev), core_tensor(w, dev), None, **kw).to_numpy()
    if op == "conv2d_backward_data":
        return _core.conv2d_backward_data(core_tensor(dy, dev), core_tensor(w, dev), list(xs),
                                          **kw).to_numpy()
    return _core.conv2d_backward_weight(core_tensor(dy, dev), core_tensor(x, dev), list(ws),
                                        **kw).to_numpy()


def check_every_plan(dev, r, xs, ws, stride, pad, dil, groups, seen, dtype=np.float32):
    """Every plan of each pass against the float64 reference (of the float16-rounded operands
    for float16, which a GPU convolves natively, in its own plans, with float32 sums)."""
    x = r.standard_normal(xs).astype(dtype)
    w = r.standard_normal(ws).astype(dtype)
    y_ref = conv_ref(x, w, None, stride, pad, dil, groups)
    dy = r.standard_normal(y_ref.shape).astype(dtype)
    dx_ref, dw_ref = conv_grads_ref(dy, x, w, stride, pad, dil, groups)
    refs = dict(zip(PASSES, (y_ref, dx_ref, dw_ref)))
    kw = {"stride": list(stride), "padding": list(pad), "dilation": list(dil),
          "groups": groups}
    _core.clear_conv_autotune()
    for op in PASSES:  # tunes each pass: its plans are then listed
        run_pass(op, dev, x, w, dy, xs, ws, kw)
    plans = {res["key"].split(" x")[0].replace(" float16", ""):
             [name for name, _ in res["candidates"]]
             for res in device.conv_autotune_results(dev)}
    for op in PASSES:
        ref = refs[op]
        # sums of up to ~100 products of unit normals: a tolerance on the output's scale
        atol = 2e-5 * max(1.0, float(np.abs(ref).max())) * np.sqrt(ws[1] * ws[2] * ws[3])
        rtol = 1e-4
        if dtype == np.float16:  # the result's rounding to float16 dominates
            atol, rtol = 2e-3 * max(1.0, float(np.abs(ref).max())), 2e-3
        for name in plans.get(op, [None]):  # a pass with one plan runs it untuned
            _core._force_conv_plan(name or "")
            got = run_pass(op, dev, x, w, dy, xs, ws, kw)
            np.testing.assert_allclose(
                got.astype(np.float64), ref, rtol=rtol, atol=atol,
                err_msg=f"{op} plan {name!r}: x {xs} w {ws} stride {stride} pad {pad} "
                        f"dilation {dil} groups {groups} {np.dtype(dtype).name}")
            seen.add(re.sub(r" of \d+( rows)?", "", name) if name else "single")
        _core._force_conv_plan("")


def test_every_plan_on_random_geometries(dev, tuning):
    r = np.random.default_rng(20261127)
    seen = set()
    for i in range(150):
        check_every_plan(dev, r, *geometry(r), seen, np.float16 if i % 5 == 4 else np.float32)
    # The fuzz reached the plans it is for (a change to the candidates or the generator that
    # stops it from doing so fails here, rather than testing less in silence).
    expected = {"winograd", "winograd 4x4", "batched", "batched-direct", "direct", "chunks",
                "image by image", "single"}
    if dev.is_cuda:
        expected.add("chunks, no split-K")
    assert expected <= seen, sorted(seen)


def test_forced_plan_is_run_and_not_remembered(rng, tuning):
    # Forcing a plan runs exactly it: bit for bit the output of that plan as the device's own
    # (Winograd as the GPU's plan, run on the CPU; im2col as the CPU's), which differ in their
    # roundings. Nothing is tuned meanwhile; "" tunes again.
    dev = device.get_default_device()
    x, w = core_tensor(rng.standard_normal((2, 16, 6, 6)).astype(np.float32)), \
        core_tensor(rng.standard_normal((16, 16, 3, 3)).astype(np.float32))

    def conv():
        return _core.conv2d(x, w, None, [1, 1], [1, 1, 1, 1]).to_numpy()

    device.set_conv_autotune(False)
    cpu_plan = conv()
    old = _core._set_conv_gpu_plan_on_cpu(True)
    try:
        winograd = conv()
        tile = _core._conv2d_path(dev, [2, 16, 6, 6], [16, 16, 3, 3], [1, 1], [1, 1, 1, 1])
    finally:
        _core._set_conv_gpu_plan_on_cpu(old)
    assert tile.startswith("winograd") and not np.array_equal(cpu_plan, winograd)
    device.set_conv_autotune(True)
    names = []
    for name in (tile, "chunks of 2"):
        assert _core._force_conv_plan(name) == (names[-1] if names else "")
        names.append(name)
        np.testing.assert_array_equal(conv(), winograd if name == tile else cpu_plan)
    assert device.conv_autotune_results(dev) == []
    assert _core._force_conv_plan("") == "chunks of 2"
    conv()
    (res,) = device.conv_autotune_results(dev)
    assert {tile, "chunks of 2"} <= {name for name, _ in res["candidates"]}
