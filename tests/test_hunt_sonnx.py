"""Bug hunt in minisinga.sonnx: less-travelled attributes of imported ops, export of every
layer type, SONNXModel re-training, and the rep's handling of inputs and constants.

Oracles: onnx.reference.ReferenceEvaluator (part of the onnx package that sonnx needs anyway),
numpy references, round trips export -> import, and onnxruntime (a test dependency; the
reference evaluator stands in where it is missing, except for the cases it gets wrong).
"""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from minisinga import autograd, layer, model, opt, rnn, sonnx, tensor  # noqa: E402
from minisinga.sonnx import backend as sb  # noqa: E402

R = np.random.default_rng(7)
N = helper.make_node
BIG = np.iinfo(np.int64).max
SMALL = np.iinfo(np.int64).min


def f32(*shape, lo=-2.0, hi=2.0):
    return R.uniform(lo, hi, shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


def build(nodes, inputs, outputs=("y",), inits=(), opset=13, out_shapes=None):
    """A checked model: inputs and initializers are (name, array) pairs; output types are
    inferred unless `out_shapes` gives (elem type, shape) per output."""
    nodes = nodes if isinstance(nodes, list) else [nodes]
    if out_shapes is None:
        outs = [helper.make_empty_tensor_value_info(o) for o in outputs]
    else:
        outs = [helper.make_tensor_value_info(o, t, s) for o, (t, s) in zip(outputs, out_shapes)]
    g = helper.make_graph(
        nodes, "hunt",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in inputs],
        outs, [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    if out_shapes is None:
        m = onnx.shape_inference.infer_shapes(m)
    onnx.checker.check_model(m)
    return m


try:
    import onnxruntime as _ort
except ImportError:  # optional oracle: onnx's reference evaluator stands in
    _ort = None


def reference(m, inputs, ort_only=False, ref_only=False):
    """The outputs of m: onnxruntime where it is installed, else onnx's reference evaluator
    (which is wrong for some pooling, opset-11 softmax and cropping pads: those cases are
    `ort_only` and fail without onnxruntime, a test dependency; onnxruntime refuses some valid
    models: `ref_only`)."""
    if _ort is not None and not ref_only:
        s = _ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return s.run(None, dict(inputs))
    if ort_only:
        pytest.fail("onnx's reference evaluator is wrong here and onnxruntime is not "
                    "installed: pip install -e '.[test]' (it lists onnxruntime)")
    return ReferenceEvaluator(m).run(None, dict(inputs))


def assert_same(got, ref, rtol=1e-4, atol=1e-5):
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        r = np.asarray(r)
        assert g.shape == r.shape, (g.shape, r.shape)
        assert g.dtype == r.dtype, (g.dtype, r.dtype)
        if r.dtype.kind == "f":
            assert_allclose(g, r, rtol=rtol, atol=atol)
        else:
            assert_array_equal(g, r)


def check(nodes, inputs, outputs=("y",), inits=(), opset=13, ort_only=False, ref_only=False,
          **tol):
    m = build(nodes, inputs, outputs, inits, opset)
    got = sb.prepare(m).run([a for _, a in inputs])
    assert_same(got, reference(m, inputs, ort_only, ref_only), **tol)
    return got


# ---------------------------------------------------------------------------------------------
# Imported ops with non-default attributes, against onnx's reference evaluator
# ---------------------------------------------------------------------------------------------

CASES = []


def case(id_, nodes, inputs, inits=(), opset=13, outputs=("y",)):
    CASES.append(pytest.param(nodes, inputs, inits, opset, outputs, id=id_))


# onnx's reference evaluator disagrees with onnxruntime (and the ONNX spec) on these
ORT_ONLY = {"MaxPool-same-lower", "BatchNormalization-11-attributes", "Softmax-11-axis-2",
            "LogSoftmax-11-axis-2", "Softmax-12-axis-2", "LogSoftmax-12-axis-2",
            "Pad-constant-cropping", "Pad-reflect-cropping", "Pad-edge-cropping",
            "Resize-18-negative-axes", "OneHot-float-indices"}
# onnxruntime refuses these ('Dilation not supported for AutoPadType::SAME_UPPER')
REF_ONLY = {"Conv-same-upper-dilated", "Conv-same-lower-dilated-s2"}


for _name, _attrs, _xs, _ws in [
        ("same-lower-s2", {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, (1, 2, 7, 8),
         (3, 2, 3, 3)),
        ("same-upper-dilated", {"auto_pad": "SAME_UPPER", "dilations": [2, 2]}, (1, 2, 7, 8),
         (3, 2, 3, 3)),
        ("same-lower-dilated-s2", {"auto_pad": "SAME_LOWER", "dilations": [2, 1],
                                   "strides": [2, 2]}, (1, 2, 7, 8), (3, 2, 2, 2)),
        ("same-upper-k2", {"auto_pad": "SAME_UPPER"}, (1, 2, 5, 5), (3, 2, 2, 2)),
        ("group-dilated-asymmetric", {"group": 2, "dilations": [1, 2], "pads": [0, 2, 1, 0],
                                      "strides": [2, 1]}, (1, 4, 7, 9), (6, 2, 3, 2)),
        ("pads-bigger-than-input", {"pads": [3, 3, 3, 3]}, (1, 1, 2, 2), (1, 1, 3, 3)),
        ("1d-dilated", {"dilations": [2], "pads": [0, 3]}, (2, 3, 9), (4, 3, 3)),
        ("1d-same-lower", {"auto_pad": "SAME_LOWER", "strides": [2]}, (2, 3, 8), (4, 3, 4)),
        ("1d-group", {"group": 3}, (2, 3, 8), (6, 1, 3))]:
    case(f"Conv-{_name}", N("Conv", ["x", "w", "b"], ["y"], **_attrs), [("x", f32(*_xs))],
         [("w", f32(*_ws)), ("b", f32(_ws[0]))])

for _op, _name, _attrs, _xs in [
        ("MaxPool", "ceil-asymmetric", {"kernel_shape": [3, 3], "strides": [2, 2],
                                        "pads": [0, 1, 1, 0], "ceil_mode": 1}, (1, 2, 6, 7)),
        ("MaxPool", "same-lower", {"kernel_shape": [3, 3], "strides": [2, 2],
                                   "auto_pad": "SAME_LOWER"}, (1, 2, 6, 7)),
        ("MaxPool", "k2s2-begin-pads", {"kernel_shape": [2, 2], "strides": [2, 2],
                                        "pads": [1, 1, 0, 0]}, (1, 2, 5, 5)),
        ("MaxPool", "k2s2-all-pads", {"kernel_shape": [2, 2], "strides": [2, 2],
                                      "pads": [1, 1, 1, 1]}, (1, 2, 5, 5)),
        ("MaxPool", "k2s2-ceil", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
         (1, 2, 5, 5)),
        ("MaxPool", "1d-ceil", {"kernel_shape": [3], "strides": [2], "ceil_mode": 1}, (1, 2, 8)),
        ("AveragePool", "same-lower-exclude", {"kernel_shape": [3, 3], "strides": [2, 2],
                                               "auto_pad": "SAME_LOWER"}, (1, 2, 6, 7)),
        ("AveragePool", "asymmetric-include", {"kernel_shape": [3, 2], "pads": [2, 0, 0, 1],
                                               "count_include_pad": 1}, (1, 2, 5, 6)),
        ("AveragePool", "asymmetric-exclude", {"kernel_shape": [3, 2], "pads": [2, 0, 0, 1],
                                               "strides": [2, 2]}, (1, 2, 5, 6)),
        ("AveragePool", "k2s2-begin-exclude", {"kernel_shape": [2, 2], "strides": [2, 2],
                                               "pads": [1, 1, 0, 0]}, (1, 2, 5, 5)),
        ("AveragePool", "1d-pads-include", {"kernel_shape": [3], "pads": [1, 1],
                                            "count_include_pad": 1}, (1, 2, 8)),
        ("AveragePool", "1d-pads-exclude", {"kernel_shape": [3], "pads": [1, 2],
                                            "strides": [2]}, (1, 2, 8))]:
    case(f"{_op}-{_name}", N(_op, ["x"], ["y"], **_attrs), [("x", f32(*_xs))])

case("Gemm-transA-beta0", N("Gemm", ["a", "b", "c"], ["y"], transA=1, alpha=0.3, beta=0.0),
     [("a", f32(5, 3)), ("b", f32(5, 4)), ("c", f32(3, 4))])
case("Gemm-c-row", N("Gemm", ["a", "b", "c"], ["y"], transB=1, beta=-1.5), [("a", f32(3, 5))],
     [("b", f32(4, 5)), ("c", f32(1, 4))])
case("Gemm-c-0d", N("Gemm", ["a", "b", "c"], ["y"]), [("a", f32(3, 5))],
     [("b", f32(5, 4)), ("c", np.array(2.0, np.float32))])
case("Gemm-no-c", N("Gemm", ["a", "b"], ["y"], beta=3.0, alpha=-1.0),
     [("a", f32(3, 5)), ("b", f32(5, 4))])
for _name, _shape in [("0-0--1", i64(0, 0, -1)), ("-1-0-2", i64(-1, 0, 2))]:
    case(f"Reshape-{_name}", N("Reshape", ["x", "s"], ["y"]), [("x", f32(2, 3, 4))],
         [("s", _shape)])
case("Reshape-allowzero", N("Reshape", ["x", "s"], ["y"], allowzero=1), [("x", f32(2, 3, 4))],
     [("s", i64(4, 6))], opset=14)
for _opset in [11, 13]:
    case(f"Slice-{_opset}-omitted-axes-negative-steps",
         N("Slice", ["x", "b", "e", "", "s"], ["y"]), [("x", f32(4, 5))],
         [("b", i64(-1, 3)), ("e", i64(-BIG, -BIG)), ("s", i64(-2, -1))], opset=_opset)
    case(f"Slice-{_opset}-clamped", N("Slice", ["x", "b", "e", "a"], ["y"]), [("x", f32(4, 5))],
         [("b", i64(-100)), ("e", i64(100)), ("a", i64(-2))], opset=_opset)
    case(f"Slice-{_opset}-mixed", N("Slice", ["x", "b", "e", "a", "s"], ["y"]),
         [("x", f32(4, 5, 6))], [("b", i64(10, 1, -2)), ("e", i64(0, 4, -7)),
                                 ("a", i64(-1, 1, 0)), ("s", i64(-3, 2, -1))], opset=_opset)
case("Slice-flip-int64-min", N("Slice", ["x", "b", "e", "a", "s"], ["y"]), [("x", f32(3, 4))],
     [("b", i64(-1)), ("e", i64(SMALL)), ("a", i64(1)), ("s", i64(-1))])
case("Slice-negative-step-empty", N("Slice", ["x", "b", "e", "a", "s"], ["y"]),
     [("x", f32(3, 4))], [("b", i64(0)), ("e", i64(3)), ("a", i64(1)), ("s", i64(-1))])
case("Slice-int32-arguments", N("Slice", ["x", "b", "e", "a", "s"], ["y"]), [("x", f32(7, 3))],
     [("b", np.array([1], np.int32)), ("e", np.array([-1], np.int32)),
      ("a", np.array([-2], np.int32)), ("s", np.array([2], np.int32))])
case("Slice-host-flip", [N("Shape", ["x"], ["sh"]),
                         N("Slice", ["sh", "b", "e", "a", "s"], ["y"])],
     [("x", f32(3, 4, 5))], [("b", i64(-1)), ("e", i64(SMALL)), ("a", i64(0)), ("s", i64(-1))])
case("Gather-negative-axis", N("Gather", ["x", "i"], ["y"], axis=-2), [("x", f32(2, 5, 3))],
     [("i", i64(-1, 0, 4))])
case("Gather-int32-negative-indices", N("Gather", ["x", "i"], ["y"], axis=1),
     [("x", f32(2, 5, 3)), ("i", np.array([[-1, 2], [0, -5]], np.int32))])
case("Gather-0d-index", N("Gather", ["x", "i"], ["y"], axis=1),
     [("x", f32(2, 5)), ("i", np.array(-2, np.int64))])
case("Concat-axis-3", N("Concat", ["a", "b"], ["y"], axis=-3),
     [("a", f32(1, 2, 3)), ("b", f32(2, 2, 3))])
case("Split-11-negative-axis", N("Split", ["x"], ["y", "z"], axis=-2, split=[1, 2]),
     [("x", f32(2, 3, 4))], opset=11, outputs=("y", "z"))
case("Split-13-negative-axis", N("Split", ["x"], ["y", "z", "w"], axis=-1),
     [("x", f32(2, 6))], outputs=("y", "z", "w"))
case("Split-18-negative-axis", N("Split", ["x"], ["y", "z"], axis=-1, num_outputs=2),
     [("x", f32(2, 7))], opset=18, outputs=("y", "z"))
case("Transpose-default-4d", N("Transpose", ["x"], ["y"]), [("x", f32(2, 3, 4, 5))])
_BN = [("s", f32(3)), ("b", f32(3)), ("m", f32(3)), ("v", f32(3, lo=0.1, hi=1.0))]
case("BatchNormalization-11-attributes",
     N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=0.1, momentum=0.5),
     [("x", f32(2, 3, 4, 5))], _BN, opset=11)
case("BatchNormalization-5d", N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]),
     [("x", f32(2, 3, 2, 2, 2))], _BN, opset=15)
for _opset in [11, 12, 13]:
    for _op in ["Softmax", "LogSoftmax"]:
        case(f"{_op}-{_opset}-axis-2", N(_op, ["x"], ["y"], axis=-2), [("x", f32(2, 3, 4))],
             opset=_opset)
        case(f"{_op}-{_opset}-1d", N(_op, ["x"], ["y"], axis=0), [("x", f32(5))], opset=_opset)
case("Cast-float-int32", N("Cast", ["x"], ["y"], to=TensorProto.INT32),
     [("x", np.array([-2.7, -0.5, 0.5, 2.7], np.float32))])
case("Cast-float-uint8", N("Cast", ["x"], ["y"], to=TensorProto.UINT8),
     [("x", np.array([0.0, 3.7, 200.5, 255], np.float32))])
case("Cast-float-double", N("Cast", ["x"], ["y"], to=TensorProto.DOUBLE), [("x", f32(3))])
case("Cast-float16-int32", N("Cast", ["x"], ["y"], to=TensorProto.INT32),
     [("x", np.array([1.5, -2.5], np.float16))])
case("Clip-min-only", N("Clip", ["x", "lo"], ["y"]), [("x", f32(3, 4))],
     [("lo", np.array(0.1, np.float32))])
case("Clip-int", N("Clip", ["x", "lo", "hi"], ["y"]), [("x", R.integers(-9, 9, (3, 4)))],
     [("lo", i64(-3)), ("hi", i64(4))])
case("Clip-bounds-as-graph-inputs", N("Clip", ["x", "lo", "hi"], ["y"]),
     [("x", f32(3, 4)), ("lo", np.array(-1, np.float32)), ("hi", np.array(1, np.float32))])
for _mode in ["constant", "reflect", "edge"]:
    case(f"Pad-{_mode}-4d", N("Pad", ["x", "p"], ["y"], mode=_mode), [("x", f32(1, 2, 3, 4))],
         [("p", i64(0, 0, 1, 2, 0, 0, 2, 1))])
    case(f"Pad-{_mode}-18-negative-axes", N("Pad", ["x", "p", "", "a"], ["y"], mode=_mode),
         [("x", f32(2, 3, 4))], [("p", i64(2, 1, 0, 1)), ("a", i64(-1, 0))], opset=18)
    case(f"Pad-{_mode}-cropping", N("Pad", ["x", "p"], ["y"], mode=_mode), [("x", f32(4, 5))],
         [("p", i64(-1, 2, 1, -2))])
for _op in ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Equal", "Less", "Greater"]:
    case(f"{_op}-broadcast-left", N(_op, ["a", "b"], ["y"]),
         [("a", f32(4, lo=0.5)), ("b", f32(2, 3, 4, lo=0.5))])
    case(f"{_op}-broadcast-0d", N(_op, ["a", "b"], ["y"]),
         [("a", np.array(1.5, np.float32)), ("b", f32(2, 3, lo=0.5))])
    case(f"{_op}-broadcast-middle", N(_op, ["a", "b"], ["y"]),
         [("a", f32(2, 1, 4, lo=0.5)), ("b", f32(1, 3, 1, lo=0.5))])
for _op in ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2",
            "ReduceSumSquare", "ReduceProd"]:
    case(f"{_op}-18-keepdims0-axes-input", N(_op, ["x", "a"], ["y"], keepdims=0),
         [("x", f32(2, 3, 4, lo=0.1))], [("a", i64(-1, 0))], opset=18)
    case(f"{_op}-18-empty-axes", N(_op, ["x", "a"], ["y"], keepdims=0),
         [("x", f32(2, 3, 4, lo=0.1))], [("a", np.zeros(0, np.int64))], opset=18)
    case(f"{_op}-11-negative-axis", N(_op, ["x"], ["y"], axes=[-2]),
         [("x", f32(2, 3, 4, lo=0.1))], opset=11)
case("ArgMax-ties", N("ArgMax", ["x"], ["y"], axis=1),
     [("x", np.array([[1, 3, 3, 0], [2, 2, 2, 2]], np.float32))])
case("ArgMin-ties-keepdims0", N("ArgMin", ["x"], ["y"], axis=0, keepdims=0),
     [("x", np.array([[1, 0, 3], [1, 0, 2]], np.float32))])
case("Resize-sizes-3d", N("Resize", ["x", "", "", "s"], ["y"], mode="nearest"),
     [("x", f32(2, 3, 4))], [("s", i64(2, 3, 9))])
case("Resize-18-negative-axes", N("Resize", ["x", "", "", "s"], ["y"], mode="nearest",
                                  axes=[-1]), [("x", f32(1, 2, 3, 4))], [("s", i64(7))],
     opset=18)
case("Resize-batch-axis", N("Resize", ["x", "", "s"], ["y"], mode="nearest"),
     [("x", f32(2, 2, 3, 3))], [("s", np.array([2, 1, 1, 1], np.float32))])
case("Where-three-way-broadcast", N("Where", ["c", "a", "b"], ["y"]),
     [("c", R.random((2, 1, 4)) > 0.5), ("a", f32(3, 1)), ("b", f32(1))])
case("Expand-shorter-shape", N("Expand", ["x", "s"], ["y"]), [("x", f32(2, 3, 1))],
     [("s", i64(4))])
case("Unsqueeze-unsorted-negative", N("Unsqueeze", ["x", "a"], ["y"]), [("x", f32(3, 4))],
     [("a", i64(-1, 0))])
case("OneHot-float-indices", N("OneHot", ["i", "d", "v"], ["y"], axis=1),
     [("i", np.array([0.0, 2.7, -1.0], np.float32))],
     [("d", np.array(3.0, np.float32)), ("v", np.array([-1, 2], np.float32))])
case("Shape-15-clamped", N("Shape", ["x"], ["y"], start=-10, end=10), [("x", f32(2, 3, 4))],
     opset=15)


@pytest.mark.parametrize("nodes, inputs, inits, opset, outputs", CASES)
def test_op_matches_the_reference(request, nodes, inputs, inits, opset, outputs):
    id_ = request.node.callspec.id
    check(nodes, inputs, outputs, inits, opset, id_ in ORT_ONLY, id_ in REF_ONLY)


def test_reduce_sum_square_l1_l2_keep_their_pointwise_step_with_noop_empty_axes():
    """BUG: with noop_with_empty_axes=1 and empty axes ONNX reduces over no axis, but "the
    composite-reduction operators will still perform the non-reduction steps": ReduceSumSquare
    gives x^2, ReduceL1 |x|, ReduceL2 sqrt(x^2) (onnxruntime and onnx.reference agree).
    minisinga returns x itself."""
    x = f32(2, 3)
    for op, want in [("ReduceSumSquare", x * x), ("ReduceL1", np.abs(x)),
                     ("ReduceL2", np.abs(x))]:
        m = build(N(op, ["x", "a"], ["y"], noop_with_empty_axes=1), [("x", x)],
                  inits=[("a", np.zeros(0, np.int64))], opset=18)
        assert_allclose(sb.prepare(m).run([x])[0], want, rtol=1e-6, err_msg=op)


def test_clip_with_min_above_max_gives_max():
    """BUG: ONNX Clip: 'When min is greater than max, the clip operator sets all the input
    values to the value of max' (Min(max, Max(x, min))); minisinga refuses the node."""
    x = f32(3, 4)
    m = build(N("Clip", ["x", "lo", "hi"], ["y"]), [("x", x)],
              inits=[("lo", np.array(0.5, np.float32)), ("hi", np.array(-0.5, np.float32))])
    assert_array_equal(sb.prepare(m).run([x])[0], np.full_like(x, -0.5))


def test_cast_to_int64_outside_int32_is_exact_or_refused():
    """BUG: Cast float -> INT64 of values outside int32 saturates silently (3e9 comes back
    as 2147483647), whereas int64 inputs outside int32 are refused."""
    x = np.array([3e9, -5e9, 7.0], np.float32)
    m = build(N("Cast", ["x"], ["y"], to=TensorProto.INT64), [("x", x)])
    try:
        got = sb.prepare(m).run([x])[0]
    except ValueError:
        return
    assert_array_equal(got, x.astype(np.int64))


@pytest.mark.parametrize("by, value", [("sizes", i64(4, 4)),
                                       ("scales", np.array([2, 2], np.float32)),
                                       ("scales", np.array([1, 1, 2, 2, 2], np.float32))])
def test_resize_with_scales_or_sizes_of_the_wrong_length_is_refused(by, value):
    """BUG: ONNX wants one scale / size per axis (of X, or of `axes`). Too few gives a bare
    KeyError (no node named); too many are silently ignored."""
    ins = ["x", "", "v"] if by == "scales" else ["x", "", "", "v"]
    m = build(N("Resize", ins, ["y"], name="rs", mode="nearest"), [("x", f32(2, 2, 3, 3))],
              inits=[("v", value)], out_shapes=[(TensorProto.FLOAT, ["a", "b", "c", "d"])])
    with pytest.raises(ValueError, match=r"node 'rs' \(Resize\)"):
        sb.prepare(m).run([f32(2, 2, 3, 3)])


def test_conv_kernel_shape_that_contradicts_the_weights_is_refused():
    """BUG (silently accepted): kernel_shape [2, 2] with 3x3 weights; onnxruntime refuses
    ('kernel_shape is not compatible with W shape'), minisinga ignores the attribute."""
    m = build(N("Conv", ["x", "w"], ["y"], name="cv", kernel_shape=[2, 2]),
              [("x", f32(1, 2, 5, 5))], inits=[("w", f32(3, 2, 3, 3))],
              out_shapes=[(TensorProto.FLOAT, ["a", "b", "c", "d"])])
    with pytest.raises(ValueError, match=r"node 'cv' \(Conv\).*kernel_shape"):
        sb.prepare(m).run([f32(1, 2, 5, 5)])


def test_unsupported_ops_and_opsets_name_the_problem():
    for op in ["ReduceLogSumExp", "Hardmax"]:
        m = build(N(op, ["x"], ["y"], name="u"), [("x", f32(2, 3))])
        with pytest.raises(NotImplementedError, match=rf"node 'u' \({op}\).*{op}"):
            sb.prepare(m)
    m = build(N("Resize", ["x", "", "s"], ["y"], name="u", mode="linear"),
              [("x", f32(1, 1, 2, 2))], inits=[("s", np.array([1, 1, 2, 2], np.float32))])
    with pytest.raises(ValueError, match=r"node 'u' \(Resize\).*linear"):
        sb.prepare(m)
    m = build(N("Relu", ["x"], ["y"]), [("x", f32(2))], opset=10)
    with pytest.raises(ValueError, match="opset 10"):
        sb.prepare(m)


# ---------------------------------------------------------------------------------------------
# Inputs, initializers and the rep's constants
# ---------------------------------------------------------------------------------------------

def test_graph_input_changed_in_place_is_read_again():
    """BUG: a graph input that a host-only op reads (here Mod) is kept on the host and made a
    device constant for the device ops; the cache returns the tensor of the previous run when
    the SAME numpy array comes again (`old is arr`), so a caller reusing its input buffer gets
    stale results from Relu."""
    x = f32(3, 4)
    m = build([N("Relu", ["x"], ["y"]), N("Mod", ["x", "c"], ["z"], fmod=1)], [("x", x)],
              outputs=("y", "z"), inits=[("c", np.array(0.7, np.float32))])
    rep = sb.prepare(m)
    rep.run([x])
    x[...] = -x
    y, z = rep.run([x])
    assert_allclose(z, np.fmod(x, np.float32(0.7)), rtol=1e-6)
    assert_array_equal(y, np.maximum(x, 0))


def test_numpy_run_does_not_depend_on_an_earlier_training_run_with_tensors():
    """BUG: a rep's numpy runs are inference (running statistics), but a Tensor run in training
    mode updates the running mean / variance held in the rep's cached constant tensors, so
    later numpy runs of the same rep give other outputs (the initializers are unchanged)."""
    x = f32(8, 3, 4, 4)
    m = build(N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"]), [("x", x)], inits=_BN)
    rep = sb.prepare(m)
    before = rep.run([x])[0]
    with autograd.train_mode():
        rep.run([tensor.from_numpy(x)])
    assert_allclose(rep.run([x])[0], before, rtol=1e-6, atol=1e-6)


def test_integer_numpy_input_of_a_float_graph_input_is_cast():
    """Differs from SINGA: SingaRep.to_input_tensor casts numpy inputs to the graph input's
    declared type (uint8 images, np.arange data, ...). minisinga makes an int32 tensor and the
    first float op fails with 'matmul: a has dtype int32'."""
    w = f32(4, 3)
    m = build(N("Gemm", ["x", "w"], ["y"]), [("x", f32(2, 4))], inits=[("w", w)])
    xi = np.arange(8, dtype=np.uint8).reshape(2, 4)
    assert_allclose(sb.prepare(m).run([xi])[0], xi.astype(np.float32) @ w, rtol=1e-5)


def test_external_data_initializers_and_initializers_listed_as_inputs(tmp_path):
    from onnx.external_data_helper import convert_model_to_external_data

    w, b = f32(3, 4), f32(3)
    g = helper.make_graph(
        [N("Gemm", ["x", "w", "b"], ["y"], transB=1)], "t",
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 4]),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], ir_version=6)
    x = f32(5, 4)
    want = x @ w.T + b
    rep = sb.prepare(m)
    assert rep.inputs == ["x"]
    assert_allclose(rep.run([x])[0], want, rtol=1e-5, atol=1e-6)
    assert_allclose(rep.run({"x": x})[0], want, rtol=1e-5, atol=1e-6)
    assert set(sb.SONNXModel(m).get_params()) == {"w", "b"}
    convert_model_to_external_data(m, all_tensors_to_one_file=True, location="w.bin",
                                   size_threshold=0)
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    assert_allclose(sb.prepare(str(path)).run([x])[0], want, rtol=1e-5, atol=1e-6)
    assert_allclose(sb.prepare(path).run([x])[0], want, rtol=1e-5, atol=1e-6)
    sm = sb.SONNXModel(str(path))
    assert_allclose(sm.forward(tensor.from_numpy(x))[0].to_numpy(), want, rtol=1e-5,
                    atol=1e-6)


def test_int64_float64_and_float16_initializers():
    check(N("Add", ["x", "c"], ["y"]), [("x", R.integers(-5, 5, (2, 3)))],
          inits=[("c", i64(1, 2, 3))])
    check(N("Add", ["x", "c"], ["y"]), [("x", np.array([1.5, 2.5]))],
          inits=[("c", np.array([0.1, 0.2]))])
    x16 = f32(2, 4).astype(np.float16)
    check(N("Gemm", ["x", "w", "b"], ["y"], transB=1), [("x", x16)],
          inits=[("w", f32(3, 4).astype(np.float16)), ("b", f32(3).astype(np.float16))],
          rtol=1e-2, atol=1e-2)


def test_sonnx_model_of_a_float16_graph_runs_in_float16():
    """BUG: SONNXModel makes every weight float32 (`astype(np.float32)`), so a float16 graph
    fed its float16 input fails at the first op ('Add: dtypes differ (float16 and float32)'),
    while prepare() runs the same model."""
    x16 = f32(2, 4).astype(np.float16)
    w, b = f32(4, 3).astype(np.float16), f32(3).astype(np.float16)
    m = build(N("Gemm", ["x", "w", "b"], ["y"]), [("x", x16)], inits=[("w", w), ("b", b)])
    want = sb.prepare(m).run([x16])[0]
    sm = sb.SONNXModel(m)
    y = sm.forward(tensor.from_numpy(x16))[0]
    assert y.dtype == tensor.float16
    assert_allclose(y.to_numpy(), want, rtol=1e-2, atol=1e-2)


# ---------------------------------------------------------------------------------------------
# Gradients through imported ops with special paths (finite differences of the rep itself)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("nodes, x, inits, opset", [
    (N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
     f32(1, 2, 5, 5), [], 13),
    (N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1]),
     f32(1, 2, 5, 5), [], 13),
    (N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
       auto_pad="SAME_LOWER"), f32(1, 2, 6, 7), [], 13),
    (N("Slice", ["x", "b", "e", "a", "s"], ["y"]), f32(4, 5),
     [("b", i64(-1, 3)), ("e", i64(-100, 0)), ("a", i64(0, 1)), ("s", i64(-2, -1))], 13),
    (N("Resize", ["x", "", "s"], ["y"], mode="nearest"), f32(1, 1, 3, 3),
     [("s", np.array([1, 1, 2, 1.5], np.float32))], 13),
    (N("Pad", ["x", "p"], ["y"], mode="reflect"), f32(4, 5), [("p", i64(-1, 2, 1, -2))], 13),
    (N("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2]), f32(1, 2, 7),
     [("w", f32(3, 2, 4))], 13),
    (N("Gemm", ["x", "w", "c"], ["y"], transA=1, alpha=0.5, beta=2.0), f32(3, 2),
     [("w", f32(3, 4)), ("c", f32(4))], 13),
    (N("Einsum", ["x", "w"], ["y"], equation="bij,jk->bki"), f32(2, 3, 4), [("w", f32(4, 2))],
     13),
    (N("LayerNormalization", ["x", "s", "b"], ["y"], axis=-2), f32(2, 3, 4),
     [("s", f32(3, 4)), ("b", f32(3, 4))], 17),
    (N("Softmax", ["x"], ["y"], axis=1), f32(2, 3, 4), [], 11),
], ids=["maxpool-ceil", "maxpool-end-pads", "avgpool-same-lower", "slice-negative-steps",
        "resize", "pad-reflect-crop", "conv1d-same-lower", "gemm-transA", "einsum",
        "layernorm-axis", "softmax-11"])
def test_gradient_of_imported_ops_matches_finite_differences(nodes, x, inits, opset):
    m = build(nodes, [("x", x)], inits=inits, opset=opset)
    rep = sb.prepare(m)
    r = R.standard_normal(rep.run([x])[0].shape).astype(np.float32)
    tx = tensor.Tensor(data=x, requires_grad=True, stores_grad=True)
    with autograd.train_mode():
        g = autograd.gradients(rep.run([tx])[0], tensor.from_numpy(r))[tx].to_numpy()
    num = np.zeros(x.shape)
    eps = 1e-2
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        num[i] = ((rep.run([xp])[0] * r).sum(dtype=np.float64) -
                  (rep.run([xm])[0] * r).sum(dtype=np.float64)) / (2 * eps)
    assert_allclose(g, num, rtol=2e-2, atol=2e-3 * np.abs(num).max())


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------

def exported(fn, arrays, **kw):
    """fn's export (checked with full_check), minisinga's inference output, and what the
    reference evaluator and the import give for the exported model."""
    xs = [tensor.from_numpy(a) for a in arrays]
    with autograd.train_mode(False):
        ref = (fn.forward if hasattr(fn, "train_one_batch") else fn)(*xs)
    ref = [r.to_numpy() for r in (ref if isinstance(ref, (list, tuple)) else [ref])]
    m = sonnx.export(fn, xs, **kw)
    onnx.checker.check_model(m, full_check=True)
    return m, ref


def assert_round_trip(fn, arrays, rtol=1e-4, atol=1e-5, ort_only=False, **kw):
    m, ref = exported(fn, arrays, **kw)
    assert_same(sb.prepare(m).run(list(arrays)), ref, rtol=rtol, atol=atol)
    feeds = {i.name: a for i, a in zip(m.graph.input, arrays)}
    assert_same(reference(m, feeds, ort_only), ref, rtol=rtol, atol=atol)
    return m


@pytest.mark.parametrize("fn, shapes", [
    (lambda x: autograd.softmax(x, 1), [(2, 3, 4)]),
    (lambda x: autograd.log_softmax(x, -2), [(2, 3, 4)]),
    (lambda x: autograd.clip(x, None, 0.5), [(2, 3)]),
    (lambda x: autograd.clip(x, -0.5, None), [(2, 3)]),
    (lambda a, b: autograd.cat([a, b], -1), [(2, 3), (2, 2)]),
    (lambda x: autograd.split(x, -1, [1, 2])[0], [(2, 3)]),
    (lambda x: autograd.gather(x, -1, [2, -1]), [(2, 3)]),
    (lambda x: autograd.squeeze(x, -1), [(3, 1, 1)]),
    (lambda x: autograd.transpose(x), [(2, 3, 4)]),
    (lambda x, b: autograd.add_bias(x, b, 1), [(3, 4), (3,)]),
    (lambda x: autograd.reduce_mean(x, [-1, 0], False), [(3, 4, 2)]),
    (lambda x: autograd.slice(x, [-1], [-100], [1], [-1]), [(3, 4)]),
    (lambda x: autograd.tile(x, [2, 1, 1]), [(3, 4)]),
    (lambda x: autograd.upsample(x, "nearest", [1, 2, 3]), [(2, 3, 4)]),
    (lambda x: autograd.pad(x, "edge", [0, 1, 2, 0]), [(2, 3)]),
    (lambda a, b: autograd.gemm(a, b, None, 2, 1), [(2, 3), (3, 4)]),
    (lambda x: autograd.reshape(x, [0, -1]), [(2, 3, 4)]),
], ids=["softmax-3d", "log-softmax-3d", "clip-no-min", "clip-no-max", "concat-negative",
        "split-negative", "gather-negative", "squeeze-axis", "transpose-default",
        "add-bias-axis1", "reduce-mean-axes", "slice-flip", "tile-more-dims", "upsample-3d",
        "pad-edge", "gemm-int-alpha", "reshape-0"])
def test_export_round_trip(fn, shapes):
    assert_round_trip(fn, [f32(*s) for s in shapes])


def test_export_of_negative():
    """BUG: autograd.negative (SINGA's name) makes a Negative, a subclass of Neg; the exporter
    looks the emitter up by exact type and refuses it ('cannot export operator Negative')."""
    assert_round_trip(autograd.negative, [f32(2, 3)])


def test_export_of_squeeze_with_an_empty_axis_list():
    """BUG: squeeze(x, []) drops every size-1 axis (SINGA's default), but the exporter writes
    Squeeze with an EMPTY axes input (it tests `op.axis is not None`), which ONNX shape
    inference and the reference evaluator read as 'squeeze nothing': full_check fails."""
    assert_round_trip(lambda x: autograd.squeeze(x, []), [f32(3, 1, 1)])


class _AllLayers(model.Model):
    def __init__(self):
        super().__init__()
        self.c1 = layer.Conv2d(6, 3, padding=1)
        self.c2 = layer.Conv2d(6, 3, padding=(0, 1, 2, 1), dilation=2, group=2)
        self.sc = layer.SeparableConv2d(4, 3, padding=1)
        self.c3 = layer.Conv2d(4, 3, pad_mode="SAME_UPPER", stride=2, activation="RELU")
        self.bn = layer.BatchNorm2d(4)
        self.mp = layer.MaxPool2d(2, 2)
        self.ap = layer.AvgPool2d(3, 1, padding=1)
        self.gap = layer.GlobalAvgPool2d()
        self.fl = layer.Flatten()
        self.drop = layer.Dropout(0.4)
        self.lin = layer.Linear(5)
        self.sm = layer.SoftMax()

    def forward(self, x):
        y = self.bn(self.c3(self.sc(self.c2(self.c1(x)))))
        y = self.drop(self.fl(self.gap(self.ap(self.mp(y)))))
        return self.sm(self.lin(y))


def test_export_of_every_layer_type_with_a_dynamic_batch():
    x = f32(2, 3, 12, 12)
    net = _AllLayers()
    net.compile([tensor.from_numpy(x)], is_train=False, use_graph=False)
    with autograd.train_mode():  # moves the running statistics off their initial values
        net.forward(tensor.from_numpy(x))
    m, ref = exported(net, [x], dynamic_batch=True)
    x5 = f32(5, 3, 12, 12)
    with autograd.train_mode(False):
        want = net.forward(tensor.from_numpy(x5)).to_numpy()
    assert_allclose(sb.prepare(m).run([x])[0], ref[0], rtol=1e-4, atol=1e-6)
    assert_allclose(sb.prepare(m).run([x5])[0], want, rtol=1e-4, atol=1e-6)
    # the reference evaluator's MaxPool is wrong on odd sizes: onnxruntime only
    assert_allclose(reference(m, {"input_0": x5}, ort_only=True)[0], want, rtol=1e-4,
                    atol=1e-6)


class _Recurrent(model.Model):
    def __init__(self, cls, **kw):
        super().__init__()
        self.r = cls(3, 4, batch_first=True, **kw)
        self.lin = layer.Linear(2)

    def forward(self, x):
        outs, *_ = self.r(x)
        return self.lin(autograd.reshape(outs, [outs.shape[0], -1]))


@pytest.mark.parametrize("cls", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_export_of_recurrent_layers_with_a_dynamic_batch(cls):
    net = _Recurrent(cls, bidirectional=True)
    m = assert_round_trip(net, [f32(2, 3, 3)], dynamic_batch=True)
    x = f32(4, 3, 3)
    with autograd.train_mode(False):
        want = net.forward(tensor.from_numpy(x)).to_numpy()
    assert_allclose(sb.prepare(m).run([x])[0], want, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# SONNXModel: SINGA's fine-tuning usage, batch norm's running statistics
# ---------------------------------------------------------------------------------------------

class _Base(model.Model):
    def __init__(self):
        super().__init__()
        self.c = layer.Conv2d(4, 3, padding=1)
        self.bn = layer.BatchNorm2d(4)
        self.p = layer.MaxPool2d(2, 2)
        self.f = layer.Flatten()
        self.d = layer.Dropout(0.3)
        self.l = layer.Linear(6)

    def forward(self, x):
        return self.l(self.d(self.f(self.p(autograd.relu(self.bn(self.c(x)))))))


class _FineTuned(sonnx.SONNXModel):
    """SINGA's documented pattern: the imported graph, then new layers."""

    def __init__(self, onnx_model):
        super().__init__(onnx_model)
        self.head = layer.Linear(3)

    def forward(self, *x):
        return self.head(autograd.relu(super().forward(*x)[0]))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = autograd.softmax_cross_entropy(out, y)
        self.optimizer(loss)
        return out, loss


@pytest.mark.parametrize("use_graph", [False, True])
def test_imported_model_with_a_new_head_trains(use_graph):
    x = f32(4, 2, 6, 6)
    base = _Base()
    base.compile([tensor.from_numpy(x)], is_train=False, use_graph=False)
    m = sonnx.export(base, [tensor.from_numpy(x)], dynamic_batch=True)
    net = _FineTuned(m)
    net.set_optimizer(opt.SGD(lr=0.05, momentum=0.9))
    tx, ty = tensor.from_numpy(x), tensor.from_numpy(np.array([0, 1, 2, 0], np.int32))
    net.compile([tx], is_train=True, use_graph=use_graph, sequential=True)
    names = set(net.get_params())
    assert {"c.W", "c.b", "bn.scale", "bn.bias", "l.W", "l.b"} <= names
    assert any(n.startswith("head") for n in names)
    w0 = net.get_params()["c.W"].to_numpy().copy()
    losses = [net(tx, ty)[1].to_numpy().item() for _ in range(12)]
    assert losses[-1] < losses[0]
    assert not np.allclose(net.get_params()["c.W"].to_numpy(), w0)


def test_sonnx_model_batchnorm_uses_onnx_momentum_for_its_running_mean():
    x = f32(8, 3, 4, 4)
    s, b, mu, var = [a for _, a in _BN]
    m = build(N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], momentum=0.8),
              [("x", x)], inits=_BN)
    sm = sb.SONNXModel(m)
    assert set(sm.get_params()) == {"s", "b"}
    sm.train()
    with autograd.train_mode():
        y = sm.forward(tensor.from_numpy(x))[0].to_numpy()
    c = (slice(None), None, None)
    bm, bv = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    assert_allclose(y, (x - bm[c]) / np.sqrt(bv[c] + 1e-5) * s[c] + b[c], rtol=1e-4, atol=1e-5)
    assert_allclose(sm.get_states()["m"].to_numpy(), 0.8 * mu + 0.2 * bm, rtol=1e-5, atol=1e-6)
