"""conv2d and its backward ops against naive float64 numpy references."""

import numpy as np
import pytest
from conftest import core_tensor

from minisinga import _core, device


def out_size(n, k, s, p0, p1, d):
    return (n + p0 + p1 - (k - 1) * d - 1) // s + 1


def windows(xp, kh, kw, oh, ow, stride, dil):
    """The (N, C, OH, OW) slice of padded xp seen by kernel cell (kh, kw)."""
    h0, w0 = kh * dil[0], kw * dil[1]
    return xp[
        :,
        :,
        h0 : h0 + (oh - 1) * stride[0] + 1 : stride[0],
        w0 : w0 + (ow - 1) * stride[1] + 1 : stride[1],
    ]


def conv_ref(x, w, b=None, stride=(1, 1), pad=(0, 0, 0, 0), dil=(1, 1), groups=1):
    """Direct convolution in float64: loops over output channels and kernel cells."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, _, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    oh = out_size(h, kh, stride[0], pad[0], pad[1], dil[0])
    ow = out_size(wd, kw, stride[1], pad[2], pad[3], dil[1])
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    y = np.zeros((n, cout, oh, ow))
    coutg = cout // groups
    for o in range(cout):
        g = o // coutg
        for i in range(kh):
            for j in range(kw):
                patch = windows(xp, i, j, oh, ow, stride, dil)[:, g * cg : (g + 1) * cg]
                y[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def conv_grads_ref(dy, x, w, stride, pad, dil, groups):
    """dx and dw of <conv_ref(x, w), dy>, by differentiating conv_ref term by term."""
    dy, x, w = dy.astype(np.float64), x.astype(np.float64), w.astype(np.float64)
    h, wd = x.shape[2:]
    cout, cg, kh, kw = w.shape
    oh, ow = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[1]), (pad[2], pad[3])))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    coutg = cout // groups
    for o in range(cout):
        g = o // coutg
        for i in range(kh):
            for j in range(kw):
                patch = windows(xp, i, j, oh, ow, stride, dil)[:, g * cg : (g + 1) * cg]
                dw[o, :, i, j] = np.einsum("nchw,nhw->c", patch, dy[:, o])
                view = windows(dxp, i, j, oh, ow, stride, dil)[:, g * cg : (g + 1) * cg]
                view += np.einsum("nhw,c->nchw", dy[:, o], w[o, :, i, j])
    dx = dxp[:, :, pad[0] : pad[0] + h, pad[2] : pad[2] + wd]
    return dx, dw


def run_conv(x, w, b, stride, pad, dil, groups):
    bt = None if b is None else core_tensor(b)
    return _core.conv2d(
        core_tensor(x),
        core_tensor(w),
        bt,
        stride=list(stride),
        padding=list(pad),
        dilation=list(dil),
        groups=groups,
    ).to_numpy()


@pytest.fixture(params=["cpu-plan", "gpu-plan"])
def plan(request):
    """Runs a test with the CPU's convolution plan and again with the GPU's (wide chunks,
    strided-batched GEMMs straight into NCHW), which then runs on the CPU."""
    old = _core._set_conv_gpu_plan_on_cpu(request.param == "gpu-plan")
    yield request.param
    _core._set_conv_gpu_plan_on_cpu(old)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# (x shape, w shape, stride, padding, dilation, groups, bias)
CASES = [
    ((2, 3, 7, 9), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    ((1, 2, 6, 5), (3, 2, 2, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, False),  # batch 1
    ((3, 2, 11, 10), (2, 2, 2, 2), (4, 3), (0, 0, 0, 0), (1, 1), 1, True),  # stride > kernel
    ((2, 3, 6, 7), (5, 3, 3, 2), (1, 2), (2, 0, 0, 1), (1, 1), 1, True),  # one-sided padding
    ((2, 2, 9, 8), (3, 2, 3, 3), (1, 1), (2, 1, 0, 2), (2, 2), 1, False),  # dilation 2
    ((2, 2, 9, 8), (3, 2, 2, 3), (2, 1), (1, 1, 1, 1), (2, 1), 1, True),  # mixed dilation
    ((2, 4, 6, 6), (6, 2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, True),  # groups 2
    ((3, 4, 8, 7), (4, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 4, True),  # depthwise
    ((2, 3, 5, 6), (6, 1, 3, 3), (1, 1), (1, 0, 1, 0), (1, 1), 3, False),  # depthwise x2
    ((2, 3, 7, 8), (6, 1, 3, 2), (2, 1), (1, 0, 2, 1), (2, 1), 3, True),  # depthwise strided
    ((1, 2, 5, 9), (2, 1, 2, 3), (1, 3), (0, 2, 0, 0), (1, 2), 2, False),  # depthwise s > k
    ((2, 6, 5, 4), (4, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # 1x1 direct
    ((2, 6, 5, 4), (4, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2, False),  # 1x1 grouped
    ((2, 3, 5, 4), (2, 3, 1, 1), (2, 1), (1, 0, 0, 1), (1, 1), 1, True),  # 1x1 strided
    ((3, 1, 1, 9), (2, 1, 1, 4), (1, 2), (0, 0, 1, 1), (1, 1), 1, True),  # H = 1 (1-D)
    ((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # all ones
    ((2, 2, 3, 3), (2, 2, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # kernel == input
]


@pytest.mark.parametrize("case", CASES)
def test_forward(rng, case, plan):
    xs, ws, stride, pad, dil, groups, bias = case
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[0]) if bias else None
    y = run_conv(x, w, b, stride, pad, dil, groups)
    np.testing.assert_allclose(y, conv_ref(x, w, b, stride, pad, dil, groups), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_backward_matches_derivative(rng, case, plan):
    xs, ws, stride, pad, dil, groups, _ = case
    x, w = rand(rng, *xs), rand(rng, *ws)
    dy = rand(rng, *conv_ref(x, w, None, stride, pad, dil, groups).shape)
    dx_ref, dw_ref = conv_grads_ref(dy, x, w, stride, pad, dil, groups)
    kw = {"stride": list(stride), "padding": list(pad), "dilation": list(dil), "groups": groups}
    dx = _core.conv2d_backward_data(core_tensor(dy), core_tensor(w), list(xs), **kw)
    dw = _core.conv2d_backward_weight(core_tensor(dy), core_tensor(x), list(ws), **kw)
    db = _core.conv2d_backward_bias(core_tensor(dy))
    np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        db.to_numpy(), dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-4
    )


def numeric_grad(f, a, eps=1e-3):
    """Central differences of scalar f at float64 array a."""
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        fp = f(a)
        a[i] = old - eps
        fm = f(a)
        a[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


@pytest.mark.parametrize(
    "case",
    [
        ((1, 2, 4, 5), (3, 2, 2, 3), (2, 1), (1, 0, 2, 1), (1, 2), 1),
        ((2, 4, 4, 3), (4, 2, 3, 2), (1, 1), (1, 1, 0, 1), (1, 1), 2),
        ((2, 3, 4, 4), (3, 1, 3, 3), (1, 2), (1, 1, 1, 1), (1, 1), 3),
        ((2, 3, 3, 2), (2, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    ],
)
def test_backward_finite_differences(rng, case):
    xs, ws, stride, pad, dil, groups = case
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0])
    dy = rand(rng, *conv_ref(x, w, None, stride, pad, dil, groups).shape)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))

    def loss(xx, ww, bb):
        return float((conv_ref(xx, ww, bb, stride, pad, dil, groups) * dy64).sum())

    kw = {"stride": list(stride), "padding": list(pad), "dilation": list(dil), "groups": groups}
    dx = _core.conv2d_backward_data(core_tensor(dy), core_tensor(w), list(xs), **kw)
    dw = _core.conv2d_backward_weight(core_tensor(dy), core_tensor(x), list(ws), **kw)
    db = _core.conv2d_backward_bias(core_tensor(dy))
    np.testing.assert_allclose(
        dx.to_numpy(), numeric_grad(lambda a: loss(a, w64, b64), x64), rtol=1e-3, atol=1e-3
    )
    np.testing.assert_allclose(
        dw.to_numpy(), numeric_grad(lambda a: loss(x64, a, b64), w64), rtol=1e-3, atol=1e-3
    )
    np.testing.assert_allclose(
        db.to_numpy(), numeric_grad(lambda a: loss(x64, w64, a), b64), rtol=1e-3, atol=1e-3
    )


# Shapes that take the other code paths: several images per GEMM (small outputs, N > 1),
# one image per GEMM (>= 4096 output pixels), 1x1 without im2col, large groups.
@pytest.mark.parametrize(
    "case",
    [
        ((9, 3, 12, 10), (5, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
        ((2, 2, 66, 70), (3, 2, 3, 3), (1, 1), (1, 0, 1, 1), (1, 1), 1),
        ((3, 8, 70, 64), (4, 8, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
        ((5, 16, 9, 9), (16, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16),
        # GEMMs split over K (dw: tiny M, N), over M (dx, and y with many output channels)
        ((16, 1, 28, 28), (4, 1, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
        ((2, 32, 4, 4), (32, 32, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
        ((1, 16, 3, 3), (256, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ],
)
def test_adjoint_identity(rng, case, plan):
    """<conv(x), dy> == <x, backward_data(dy)> == <w, backward_weight(dy)>."""
    xs, ws, stride, pad, dil, groups = case
    x, w = rand(rng, *xs), rand(rng, *ws)
    kw = {"stride": list(stride), "padding": list(pad), "dilation": list(dil), "groups": groups}
    y = _core.conv2d(core_tensor(x), core_tensor(w), None, **kw).to_numpy()
    dy = rand(rng, *y.shape)
    dx = _core.conv2d_backward_data(core_tensor(dy), core_tensor(w), list(xs), **kw)
    dw = _core.conv2d_backward_weight(core_tensor(dy), core_tensor(x), list(ws), **kw)
    lhs = np.vdot(y.astype(np.float64), dy)
    np.testing.assert_allclose(np.vdot(x.astype(np.float64), dx.to_numpy()), lhs, rtol=1e-4)
    np.testing.assert_allclose(np.vdot(w.astype(np.float64), dw.to_numpy()), lhs, rtol=1e-4)
    np.testing.assert_allclose(
        y, conv_ref(x, w, None, stride, pad, dil, groups), rtol=1e-4, atol=1e-4
    )
    dx_ref, dw_ref = conv_grads_ref(dy, x, w, stride, pad, dil, groups)
    np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-4, atol=1e-3)


# The GPU plan's strided-batched path: N > 1 images of >= 1024 output pixels each.
@pytest.mark.parametrize(
    "case",
    [
        ((3, 3, 33, 32), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
        ((2, 4, 34, 33), (6, 2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, False),  # groups
        ((3, 6, 32, 40), (5, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, True),  # 1x1 direct
        ((2, 6, 32, 33), (4, 3, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 2, True),  # 1x1 groups
        ((2, 3, 66, 66), (4, 3, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, False),  # 1x1 s2
        ((30, 64, 32, 32), (3, 64, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, False),  # 2 chunks
    ],
)
def test_gpu_plan_batched_gemms(rng, case, plan):
    xs, ws, stride, pad, dil, groups, bias = case
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[0]) if bias else None
    kw = {"stride": list(stride), "padding": list(pad), "dilation": list(dil), "groups": groups}
    y = run_conv(x, w, b, stride, pad, dil, groups)
    np.testing.assert_allclose(y, conv_ref(x, w, b, stride, pad, dil, groups), rtol=1e-4,
                               atol=1e-3)
    dy = rand(rng, *y.shape)
    dx_ref, dw_ref = conv_grads_ref(dy, x, w, stride, pad, dil, groups)
    dx = _core.conv2d_backward_data(core_tensor(dy), core_tensor(w), list(xs), **kw)
    dw = _core.conv2d_backward_weight(core_tensor(dy), core_tensor(x), list(ws), **kw)
    np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-4, atol=1e-2)


WINOGRAD_CASES = [
    ((2, 16, 9, 10), (16, 16, 3, 3), (1, 1, 1, 1), True),  # odd height: a half tile
    ((3, 16, 8, 7), (20, 16, 3, 3), (0, 0, 0, 0), False),  # no padding, odd width
    ((2, 17, 6, 6), (16, 17, 3, 3), (2, 0, 1, 2), True),  # one-sided padding up to 2
    ((1, 16, 3, 3), (16, 16, 3, 3), (0, 0, 0, 0), True),  # one output: 3 of 4 cut off
    ((33, 16, 64, 64), (16, 16, 3, 3), (1, 1, 1, 1), False),  # 2 chunks of images
    # dw's tiles in slices of 65 (8 or 4 per image): slice ends cut rows of tiles
    ((65, 16, 2, 16), (16, 16, 3, 3), (1, 1, 1, 1), False),
]


@pytest.mark.parametrize("tile", ["winograd", "winograd 4x4"])
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_gpu_plan_winograd(rng, case, tile, autotune):
    """float32 3x3 stride-1 convolutions in the GPU's plan: Winograd F(4x4, 3x3) (its own
    plan) and F(2x2, 3x3) (the tuner's other candidate), each forced here, for y, dx (the data
    gradient is a convolution with the flipped filters, padded by 2 - pad) and dw (the adjoint
    transforms); against the float64 references. The cases cut 1, 2 and 3 rows or columns off
    the last F(4x4) tiles."""
    xs, ws, pad, bias = case
    dev = device.get_default_device()
    old = _core._set_conv_gpu_plan_on_cpu(True)
    try:
        for weight_grad in (False, True):
            assert _core._conv2d_path(dev, list(xs), list(ws), [1, 1], list(pad),
                                      weight_grad=weight_grad).startswith("winograd")
        _core._force_conv_plan(tile)
        x, w = rand(rng, *xs), rand(rng, *ws)
        b = rand(rng, ws[0]) if bias else None
        # F(4x4)'s coefficients (up to 8, and 1/6 .. 1/24) round: ~10 times the error of
        # F(2x2), whose coefficients are 0, +-1 and 1/2, on the output's scale
        def atol(ref):
            return 1e-4 if tile == "winograd" else 1e-5 * np.abs(ref).max()

        y = run_conv(x, w, b, (1, 1), pad, (1, 1), 1)
        y_ref = conv_ref(x, w, b, (1, 1), pad)
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=atol(y_ref))
        dy = rand(rng, *y.shape)
        dx_ref, dw_ref = conv_grads_ref(dy, x, w, (1, 1), pad, (1, 1), 1)
        dx = _core.conv2d_backward_data(core_tensor(dy), core_tensor(w), list(xs),
                                        padding=list(pad))
        np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-4, atol=atol(dx_ref))
        # dw sums over every tile of every image: its error grows with that count
        dw = _core.conv2d_backward_weight(core_tensor(dy), core_tensor(x), list(ws),
                                          padding=list(pad))
        np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-4,
                                   atol=1e-5 * np.abs(dw_ref).max())
        # each pass ran the forced tile: it was among the tuner's candidates
        for res in device.conv_autotune_results(dev):
            assert tile in [n for n, _ in res["candidates"]], res
    finally:
        _core._force_conv_plan("")
        _core._set_conv_gpu_plan_on_cpu(old)


def test_winograd_only_where_it_fits():
    dev = device.get_default_device()
    old = _core._set_conv_gpu_plan_on_cpu(True)
    try:
        def path(xs, ws, st=(1, 1), pad=(1, 1, 1, 1), dil=(1, 1), g=1):
            return _core._conv2d_path(dev, list(xs), list(ws), list(st), list(pad), list(dil),
                                      g)

        def wino(*args, **kw):
            return path(*args, **kw).startswith("winograd")

        assert wino((2, 16, 8, 8), (16, 16, 3, 3))
        assert not wino((2, 16, 8, 8), (16, 16, 3, 3), st=(2, 2))  # strided
        assert not wino((2, 16, 8, 8), (16, 16, 3, 3), dil=(2, 2))  # dilated
        assert not wino((2, 16, 8, 8), (16, 8, 3, 3), g=2)  # grouped
        assert not wino((2, 16, 8, 8), (16, 16, 3, 3), pad=(3, 1, 1, 1))  # pad 3
        assert not wino((2, 16, 8, 8), (16, 16, 3, 2))  # 3x2
        assert not wino((2, 8, 8, 8), (16, 8, 3, 3))  # 8 input channels
        assert not wino((2, 16, 8, 8), (8, 16, 3, 3))  # 8 output channels
    finally:
        _core._set_conv_gpu_plan_on_cpu(old)
    # The CPU's own plan: im2col at 16 channels (test_cpu_plan_winograd_where_it_pays).
    assert _core._conv2d_path(dev, [2, 16, 8, 8], [16, 16, 3, 3], padding=[1, 1, 1, 1]) == "chunks"


def test_cpu_plan_winograd_where_it_pays(rng):
    """The CPU's own plan runs float32 3x3 stride-1 convolutions as Winograd F(4x4) from 64
    channels in and out (128 for the weight gradient) and 128 tiles in all, im2col elsewhere;
    its y, dx and dw against the float64 references (30 x 30: the last tiles cut)."""
    dev = device.get_default_device()

    def path(xs, ws, wgrad=False):
        return _core._conv2d_path(dev, list(xs), list(ws), [1, 1], [1, 1, 1, 1],
                                  weight_grad=wgrad)

    def im2col(xs, ws, wgrad=False):
        return path(xs, ws, wgrad) in ("chunks", "bands")

    assert path((2, 64, 32, 32), (64, 64, 3, 3)) == "winograd 4x4"  # 2 x 64 tiles
    assert im2col((2, 64, 28, 32), (64, 64, 3, 3))  # 2 x 56 tiles
    assert im2col((2, 63, 32, 32), (64, 63, 3, 3))  # 63 channels in
    assert im2col((2, 64, 32, 32), (63, 64, 3, 3))  # 63 out
    assert im2col((2, 64, 32, 32), (64, 64, 3, 3), wgrad=True)
    assert path((2, 128, 32, 32), (128, 128, 3, 3), wgrad=True) == "winograd 4x4"
    assert im2col((2, 128, 32, 32), (127, 128, 3, 3), wgrad=True)
    assert path((2, 128, 32, 32), (128, 128, 3, 3)) == "winograd 4x4"
    assert _core._conv2d_path(dev, [2, 64, 32, 32], [64, 64, 3, 3], [2, 2],
                              [1, 1, 1, 1]) == "chunks"  # strided
    xs, ws = (2, 128, 30, 30), (128, 128, 3, 3)
    assert path(xs, ws) == path(xs, ws, wgrad=True) == "winograd 4x4"
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0])
    pad = (1, 1, 1, 1)
    y = run_conv(x, w, b, (1, 1), pad, (1, 1), 1)
    y_ref = conv_ref(x, w, b, (1, 1), pad)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5 * np.abs(y_ref).max())
    dy = rand(rng, *y.shape)
    dx_ref, dw_ref = conv_grads_ref(dy, x, w, (1, 1), pad, (1, 1), 1)
    dx = _core.conv2d_backward_data(core_tensor(dy), core_tensor(w), list(xs), padding=list(pad))
    np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-4, atol=1e-5 * np.abs(dx_ref).max())
    dw = _core.conv2d_backward_weight(core_tensor(dy), core_tensor(x), list(ws),
                                      padding=list(pad))
    np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-4, atol=1e-5 * np.abs(dw_ref).max())


def test_gpu_plan_switch_returns_previous():
    assert _core._set_conv_gpu_plan_on_cpu(True) is False
    assert _core._set_conv_gpu_plan_on_cpu(False) is True


def test_large_image_in_row_bands(rng, plan):
    """An image whose col matrix exceeds the 64 MiB scratch bound runs in bands of rows."""
    xs, ws, stride, pad = (1, 128, 130, 130), (2, 128, 3, 3), (1, 1), (1, 1, 1, 1)
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, 2)
    y = run_conv(x, w, b, stride, pad, (1, 1), 1)
    np.testing.assert_allclose(y, conv_ref(x, w, b, stride, pad), rtol=1e-3, atol=1e-3)
    dy = rand(rng, *y.shape)
    dx_ref, dw_ref = conv_grads_ref(dy, x, w, stride, pad, (1, 1), 1)
    kw = {"stride": list(stride), "padding": list(pad)}
    dx = _core.conv2d_backward_data(core_tensor(dy), core_tensor(w), list(xs), **kw)
    dw = _core.conv2d_backward_weight(core_tensor(dy), core_tensor(x), list(ws), **kw)
    np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-3, atol=1e-2)


def test_symmetric_padding_pair_and_defaults(rng):
    x, w = rand(rng, 2, 3, 5, 6), rand(rng, 2, 3, 3, 3)
    y2 = _core.conv2d(core_tensor(x), core_tensor(w), padding=[1, 2]).to_numpy()
    np.testing.assert_allclose(y2, conv_ref(x, w, pad=(1, 1, 2, 2)), rtol=1e-4, atol=1e-4)
    y0 = _core.conv2d(core_tensor(x), core_tensor(w)).to_numpy()
    np.testing.assert_allclose(y0, conv_ref(x, w), rtol=1e-4, atol=1e-4)


def test_empty_batch(rng):
    x, w = np.zeros((0, 3, 5, 5), np.float32), rand(rng, 2, 3, 3, 3)
    y = _core.conv2d(core_tensor(x), core_tensor(w))
    assert y.shape == (0, 2, 3, 3)
    dw = _core.conv2d_backward_weight(y, core_tensor(x), [2, 3, 3, 3])
    np.testing.assert_array_equal(dw.to_numpy(), np.zeros((2, 3, 3, 3), np.float32))


def test_graph_mode_matches_eager(rng):
    dev = _core.create_cpu_device()
    x, w, b = rand(rng, 4, 3, 8, 8), rand(rng, 5, 3, 3, 3), rand(rng, 5)
    xt, wt, bt = (core_tensor(a, dev) for a in (x, w, b))
    dev.EnableGraph(True)
    y = _core.conv2d(xt, wt, bt, padding=[1, 1, 1, 1])
    dx = _core.conv2d_backward_data(y, wt, [4, 3, 8, 8], padding=[1, 1, 1, 1])
    dev.EnableGraph(False)
    dev.RunGraph(True)
    y_ref = conv_ref(x, w, b, pad=(1, 1, 1, 1))
    np.testing.assert_allclose(y.to_numpy(), y_ref, rtol=1e-4, atol=1e-4)
    dx_ref, _ = conv_grads_ref(y_ref, x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-4, atol=1e-3)
    dev.ResetGraph()


@pytest.mark.parametrize(
    "in_hw,kernel,stride,dil,mode,expected",
    [
        ([5, 5], [3, 3], [1, 1], [1, 1], "SAME_UPPER", (1, 1, 1, 1)),
        ([5, 6], [4, 4], [1, 1], [1, 1], "SAME_UPPER", (1, 2, 1, 2)),
        ([5, 6], [4, 4], [1, 1], [1, 1], "SAME_LOWER", (2, 1, 2, 1)),
        ([7, 8], [3, 3], [2, 3], [1, 1], "SAME_UPPER", (1, 1, 0, 1)),
        ([7, 8], [3, 3], [1, 1], [2, 2], "SAME_LOWER", (2, 2, 2, 2)),
        ([4, 4], [1, 1], [2, 2], [1, 1], "SAME_UPPER", (0, 0, 0, 0)),
    ],
)
def test_same_padding(rng, in_hw, kernel, stride, dil, mode, expected):
    pad = _core.conv2d_same_padding(in_hw, kernel, stride, dil, mode)
    assert pad == expected
    # SAME means ceil(in / stride) outputs.
    x, w = rand(rng, 1, 1, *in_hw), rand(rng, 1, 1, *kernel)
    y = _core.conv2d(core_tensor(x), core_tensor(w), None, stride, list(pad), dil)
    assert y.shape[2:] == tuple(-(-i // s) for i, s in zip(in_hw, stride))


def test_same_padding_bad_mode():
    with pytest.raises(ValueError, match="conv2d_same_padding.*SAME_UPPER"):
        _core.conv2d_same_padding([5, 5], [3, 3], [1, 1], [1, 1], "VALID")
    with pytest.raises(ValueError, match="conv2d_same_padding: stride"):
        _core.conv2d_same_padding([5, 5], [3, 3], [0, 1], [1, 1], "SAME_UPPER")


def f32(*shape):
    return core_tensor(np.ones(shape, np.float32))


@pytest.mark.parametrize(
    "x,w,kw,match",
    [
        ((3, 5, 5), (2, 3, 3, 3), {}, "conv2d: x must be 4-D"),
        ((1, 3, 5, 5), (2, 3, 3), {}, "conv2d: w must be 4-D"),
        ((1, 4, 5, 5), (2, 4, 3, 3), {"groups": 2}, r"conv2d: w has shape \(2, 4, 3, 3\)"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {}, None),  # a valid call, for contrast
        ((1, 4, 5, 5), (2, 3, 3, 3), {}, r"conv2d: w has shape .*expected \(Cout >= 1, 4"),
        ((1, 3, 5, 5), (2, 1, 3, 3), {"groups": 2}, "conv2d: groups=2 must divide"),
        ((1, 4, 5, 5), (3, 2, 3, 3), {"groups": 2}, "conv2d: groups=2 must divide"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"groups": 0}, "conv2d: groups must be >= 1"),
        ((1, 3, 2, 5), (2, 3, 3, 3), {}, "conv2d: the .*kernel 3x3 is larger than the padded"),
        ((1, 3, 4, 4), (2, 3, 3, 3), {"dilation": [2, 1]}, "larger than the padded input 4x4"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": [0, 1]}, "conv2d: stride must be"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": [1, -2]}, "conv2d: stride must be"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"stride": [1, 1, 1]}, "conv2d: stride must be 2"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": [0, -1, 0, 0]}, "conv2d: padding must be >= 0"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"padding": [1, 1, 1]}, "conv2d: padding must be"),
        ((1, 3, 5, 5), (2, 3, 3, 3), {"dilation": [0, 1]}, "conv2d: dilation must be"),
    ],
)
def test_conv2d_bad_shapes_and_params(x, w, kw, match):
    if match is None:
        assert _core.conv2d(f32(*x), f32(*w), **kw).shape == (1, 2, 3, 3)
        return
    with pytest.raises(ValueError, match=match):
        _core.conv2d(f32(*x), f32(*w), **kw)


def test_conv2d_bad_bias():
    with pytest.raises(ValueError, match=r"conv2d: b has shape \(3,\), expected \(2,\)"):
        _core.conv2d(f32(1, 3, 5, 5), f32(2, 3, 3, 3), f32(3))


def test_conv2d_bad_dtypes():
    xi = core_tensor(np.ones((1, 3, 5, 5), np.int32))
    wi = core_tensor(np.ones((2, 3, 3, 3), np.int32))
    with pytest.raises(TypeError, match="conv2d: x has dtype int32, expected float32"):
        _core.conv2d(xi, f32(2, 3, 3, 3))
    with pytest.raises(TypeError, match="conv2d: w has dtype int32"):
        _core.conv2d(f32(1, 3, 5, 5), wi)
    with pytest.raises(TypeError, match="conv2d: b has dtype int32"):
        _core.conv2d(f32(1, 3, 5, 5), f32(2, 3, 3, 3), core_tensor(np.ones(2, np.int32)))
    with pytest.raises(TypeError, match="conv2d_backward_data: dy has dtype int32"):
        _core.conv2d_backward_data(
            core_tensor(np.ones((1, 2, 3, 3), np.int32)), f32(2, 3, 3, 3), [1, 3, 5, 5]
        )
    with pytest.raises(TypeError, match="conv2d_backward_weight: x has dtype int32"):
        _core.conv2d_backward_weight(f32(1, 2, 3, 3), xi, [2, 3, 3, 3])
    with pytest.raises(TypeError, match="conv2d_backward_bias: dy has dtype int32"):
        _core.conv2d_backward_bias(core_tensor(np.ones((1, 2, 3, 3), np.int32)))


def test_conv2d_mixed_devices():
    other = _core.create_cpu_device()
    x2 = core_tensor(np.ones((1, 3, 5, 5), np.float32), other)
    with pytest.raises(TypeError, match="conv2d: tensors are on different devices"):
        _core.conv2d(x2, f32(2, 3, 3, 3))
    with pytest.raises(TypeError, match="conv2d: tensors are on different devices"):
        _core.conv2d(f32(1, 3, 5, 5), f32(2, 3, 3, 3), core_tensor(np.ones(2, np.float32), other))
    with pytest.raises(TypeError, match="conv2d_backward_data: tensors are on different"):
        _core.conv2d_backward_data(
            core_tensor(np.ones((1, 2, 3, 3), np.float32), other), f32(2, 3, 3, 3), [1, 3, 5, 5]
        )
    with pytest.raises(TypeError, match="conv2d_backward_weight: tensors are on different"):
        _core.conv2d_backward_weight(f32(1, 2, 3, 3), x2, [2, 3, 3, 3])


def test_backward_bad_shapes():
    with pytest.raises(
        ValueError,
        match=r"conv2d_backward_data: dy has shape \(1, 2, 4, 3\)"
        r", expected \(1, 2, 3, 3\)",
    ):
        _core.conv2d_backward_data(f32(1, 2, 4, 3), f32(2, 3, 3, 3), [1, 3, 5, 5])
    with pytest.raises(ValueError, match="conv2d_backward_data: x must be 4-D"):
        _core.conv2d_backward_data(f32(1, 2, 3, 3), f32(2, 3, 3, 3), [3, 5, 5])
    with pytest.raises(ValueError, match="conv2d_backward_weight: dy has shape"):
        _core.conv2d_backward_weight(f32(2, 2, 3, 3), f32(1, 3, 5, 5), [2, 3, 3, 3])
    with pytest.raises(ValueError, match="conv2d_backward_weight: groups=2 must divide"):
        _core.conv2d_backward_weight(f32(1, 2, 3, 3), f32(1, 3, 5, 5), [2, 3, 3, 3], groups=2)
    with pytest.raises(ValueError, match="conv2d_backward_bias: dy must be 4-D"):
        _core.conv2d_backward_bias(f32(2, 3))


def _run_with_env(code, **env):
    import os
    import subprocess
    import sys

    from dist_helpers import pythonpath

    e = dict(os.environ, PYTHONPATH=pythonpath(), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          timeout=300)


def test_winograd_switch_from_environment():
    # MINISINGA_CONV_WINOGRAD: 4 or 2 makes the GPU plan's Winograd F(4x4, 3x3) or F(2x2, 3x3)
    # (the tuner then times no other tile), 0 turns Winograd off (for the tuner too); unset,
    # the plan is F(4x4) and the tuner times both tiles. Results match the CPU's im2col plan.
    # A bad value is named.
    code = (
        "import numpy as np\n"
        "from minisinga import _core, device\n"
        "d = device.get_default_device()\n"
        "r = np.random.default_rng(0)\n"
        "x = r.standard_normal((2, 16, 9, 10)).astype(np.float32)\n"
        "w = r.standard_normal((16, 16, 3, 3)).astype(np.float32)\n"
        "def conv():\n"
        "    tx, tw = _core.Tensor([2, 16, 9, 10], d), _core.Tensor([16, 16, 3, 3], d)\n"
        "    tx.copy_from_numpy(x); tw.copy_from_numpy(w)\n"
        "    return _core.conv2d(tx, tw, None, [1, 1], [1, 1, 1, 1]).to_numpy()\n"
        "cpu = conv()\n"
        "_core._set_conv_gpu_plan_on_cpu(True)\n"
        "print(_core._conv2d_path(d, [2, 16, 9, 10], [16, 16, 3, 3], [1, 1], [1, 1, 1, 1]))\n"
        "np.testing.assert_allclose(conv(), cpu, rtol=1e-4, atol=1e-4)\n"
        "device.set_conv_autotune(True)\n"
        "conv()\n"
        "(res,) = device.conv_autotune_results(d)\n"
        "print(sorted(n for n, _ in res['candidates'] if n.startswith('winograd')))\n"
    )
    for value, path, tuned in (("4", "winograd 4x4", ["winograd 4x4"]),
                               ("2", "winograd", ["winograd"]),
                               ("0", "chunks", []),
                               ("", "winograd 4x4", ["winograd", "winograd 4x4"])):
        r = _run_with_env(code, MINISINGA_CONV_WINOGRAD=value)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.splitlines() == [path, str(tuned)], (value, r.stdout)
    r = _run_with_env(code, MINISINGA_CONV_WINOGRAD="8")
    assert r.returncode != 0
    assert "MINISINGA_CONV_WINOGRAD is '8'; expected 0 (off), 2 or 4" in r.stderr, r.stderr[-2000:]


def test_batched_cols_override_from_environment():
    # MINISINGA_CONV_BATCHED_COLS=1: every image takes the strided-batched path of the GPU
    # plan (here on the CPU); the results match the CPU plan's. A bad value is named.
    code = (
        "import numpy as np\n"
        "from minisinga import _core\n"
        "rng = np.random.default_rng(0)\n"
        "def t(a):\n"
        "    r = _core.Tensor(list(a.shape), _core.default_device(), _core.DType.float32)\n"
        "    r.copy_from_numpy(a)\n"
        "    return r\n"
        "x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)\n"
        "w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)\n"
        "outs = []\n"
        "for gpu in (False, True):\n"
        "    _core._set_conv_gpu_plan_on_cpu(gpu)\n"
        "    y = _core.conv2d(t(x), t(w), None, [1, 1], [1, 1, 1, 1], [1, 1], 2)\n"
        "    dx = _core.conv2d_backward_data(y, t(w), [3, 4, 5, 6], [1, 1], [1, 1, 1, 1],\n"
        "                                    [1, 1], 2)\n"
        "    outs.append((y.to_numpy(), dx.to_numpy()))\n"
        "for a, b in zip(*outs):\n"
        "    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)\n"
        "print('ok')\n"
    )
    r = _run_with_env(code, MINISINGA_CONV_BATCHED_COLS="1")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-2000:]
    r = _run_with_env(code, MINISINGA_CONV_BATCHED_COLS="lots")
    assert r.returncode != 0
    assert "MINISINGA_CONV_BATCHED_COLS must be an integer >= 0" in r.stderr, r.stderr[-2000:]


# Shapes with several plans: Winograd's 3x3 (>= 16 channels), a strided 1x1 (batched or in
# chunks), a small-channel 3x3 with bias.
TUNED = [
    ((4, 16, 9, 10), (16, 16, 3, 3), (1, 1), (1, 1, 1, 1), True),
    ((3, 8, 9, 8), (12, 8, 1, 1), (2, 2), (0, 0, 0, 0), False),
    ((2, 3, 12, 11), (5, 3, 3, 3), (1, 1), (1, 0, 2, 1), True),
]


@pytest.mark.parametrize("case", TUNED, ids=str)
def test_autotuned_convolutions_are_right_and_tuned_once(dev, rng, case, autotune):
    xs, ws, stride, pad, bias = case
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[0]) if bias else None
    t = [core_tensor(a, dev) if a is not None else None for a in (x, w, b)]
    y_ref = conv_ref(x, w, b, stride, pad)
    dy = rand(rng, *y_ref.shape)
    dx_ref, dw_ref = conv_grads_ref(dy, x, w, stride, pad, (1, 1), 1)
    dyt = core_tensor(dy, dev)
    for call in range(2):  # the first call tunes, the second runs the choice
        y = _core.conv2d(t[0], t[1], t[2], list(stride), list(pad))
        dx = _core.conv2d_backward_data(dyt, t[1], list(xs), list(stride), list(pad))
        dw = _core.conv2d_backward_weight(dyt, t[0], list(ws), list(stride), list(pad))
        np.testing.assert_allclose(y.to_numpy(), y_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dx.to_numpy(), dx_ref, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-4, atol=1e-3)
        results = device.conv_autotune_results(dev)
        if call == 0:
            first = results
    assert results == first, "a tuned shape was timed again"
    # A pass with a single plan (here, on a CPU, the weight gradients without Winograd: it
    # never takes the strided-batched GEMMs, and the GPU's chunks equal the CPU's) runs it
    # untimed.
    ops = sorted(r["key"].split(" x")[0] for r in results)
    passes = ["conv2d", "conv2d_backward_data", "conv2d_backward_weight"]
    assert ops == (passes if xs[1] >= 16 or dev.is_cuda else passes[:2]), ops
    for r in results:
        names = [n for n, _ in r["candidates"]]
        secs = [s for _, s in r["candidates"]]
        assert len(names) >= 2 and len(set(names)) == len(names), r
        assert all(0 < s < 60 for s in secs), r
        assert r["chosen"] == names[int(np.argmin(secs))], r
        assert f"x{xs}" in r["key"] and f"w{ws}" in r["key"], r["key"]
    if xs[1] >= 16:
        fwd = next(r for r in results if r["key"].startswith("conv2d x"))
        assert {"winograd", "winograd 4x4"} <= {n for n, _ in fwd["candidates"]}
    # On a GPU the weight gradient's im2col plans come with and without split-K GEMMs.
    for r in results:
        no_split = [n for n, _ in r["candidates"] if n.endswith(", no split-K")]
        assert bool(no_split) == (dev.is_cuda and "weight" in r["key"]), r


def test_autotune_off_and_depthwise_tune_nothing(rng, autotune):
    x, w = rand(rng, 2, 16, 6, 6), rand(rng, 16, 16, 3, 3)
    device.set_conv_autotune(False)
    y = _core.conv2d(core_tensor(x), core_tensor(w), None, [1, 1], [1, 1, 1, 1])
    np.testing.assert_allclose(y.to_numpy(), conv_ref(x, w, pad=(1, 1, 1, 1)), rtol=1e-4,
                               atol=1e-4)
    device.set_conv_autotune(True)
    _core.conv2d(core_tensor(x), core_tensor(rand(rng, 16, 1, 3, 3)), None, [1, 1],
                 [1, 1, 1, 1], [1, 1], 16)
    assert device.conv_autotune_results(device.get_default_device()) == []


def test_autotune_in_graph_mode_matches_eager(dev, rng, autotune):
    # Recording runs nothing; the first replay tunes (on a GPU, before any capture) and the
    # replays after it run the tuned plans, equal to the eager results.
    x, w = rand(rng, 4, 16, 8, 8), rand(rng, 16, 16, 3, 3)
    xt, wt = core_tensor(x, dev), core_tensor(w, dev)
    y_ref = conv_ref(x, w, None, (1, 1), (1, 1, 1, 1))
    dev.ResetGraph()
    dev.EnableGraph(True)
    y = _core.conv2d(xt, wt, None, [1, 1], [1, 1, 1, 1])
    dw = _core.conv2d_backward_weight(y, xt, [16, 16, 3, 3], [1, 1], [1, 1, 1, 1])
    dev.EnableGraph(False)
    assert device.conv_autotune_results(dev) == []
    try:
        for _ in range(4):
            dev.RunGraph(True)
            np.testing.assert_allclose(y.to_numpy(), y_ref, rtol=1e-4, atol=1e-4)
            assert len(device.conv_autotune_results(dev)) == 2
        _, dw_ref = conv_grads_ref(y_ref, x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
        np.testing.assert_allclose(dw.to_numpy(), dw_ref, rtol=1e-4, atol=1e-2)
        assert dev.cuda_graph_captured == dev.is_cuda, dev.cuda_graph_failure
    finally:
        dev.ResetGraph()


def test_autotune_from_environment():
    code = (
        "from minisinga import _core, device\n"
        "print(_core.conv_autotune(), device.set_conv_autotune(False), _core.conv_autotune())\n"
    )
    r = _run_with_env(code, MINISINGA_CONV_AUTOTUNE="1")
    assert r.returncode == 0 and r.stdout.split() == ["True", "True", "False"], r.stderr
    r = _run_with_env(code, MINISINGA_CONV_AUTOTUNE="")
    assert r.returncode == 0 and r.stdout.split() == ["False", "False", "False"], r.stderr
    r = _run_with_env(code, MINISINGA_CONV_AUTOTUNE="yes")
    assert r.returncode != 0
    assert "MINISINGA_CONV_AUTOTUNE must be 0 or 1, got 'yes'" in r.stderr, r.stderr[-2000:]


def test_autotuned_float16(dev, rng, autotune):
    # On a GPU float16 convolutions run natively and are tuned under their own key (never
    # Winograd); on a CPU they run through float32 copies, which are tuned.
    x, w = rand(rng, 4, 16, 8, 8), rand(rng, 16, 16, 3, 3)
    x16, w16 = x.astype(np.float16), w.astype(np.float16)
    y_ref = conv_ref(x16, w16, None, (1, 1), (1, 1, 1, 1))
    for _ in range(2):
        y = _core.conv2d(core_tensor(x16, dev), core_tensor(w16, dev), None, [1, 1],
                         [1, 1, 1, 1])
        assert y.dtype == _core.DType.float16
        np.testing.assert_allclose(y.to_numpy().astype(np.float64), y_ref, rtol=2e-2,
                                   atol=5e-2)
    (r,) = device.conv_autotune_results(dev)
    assert r["key"].startswith("conv2d float16 x" if dev.is_cuda else "conv2d x"), r
    names = [n for n, _ in r["candidates"]]
    assert any(n.startswith("winograd") for n in names) != dev.is_cuda, names
