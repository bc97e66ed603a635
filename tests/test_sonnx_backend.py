"""ONNX import (minisinga.sonnx.backend): every supported op against onnxruntime, the host
evaluation of shape chains, errors, and SONNXModel (forward, gradients, graph mode, states)."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sonnx_helpers import Trainer  # noqa: E402

from minisinga import autograd, device, layer, model, opt, tensor  # noqa: E402
from minisinga.sonnx import backend as sb  # noqa: E402

R = np.random.default_rng(0)
N = helper.make_node


def f32(*shape, lo=-2.0, hi=2.0):
    return R.uniform(lo, hi, shape).astype(np.float32)


def i64(*values):
    return np.array(values, dtype=np.int64)


def build(nodes, inputs, outputs=("y",), inits=(), opset=13):
    """A checked model: inputs and initializers are (name, array) pairs; outputs are names
    (types inferred) or ValueInfoProtos."""
    g = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in inputs],
        [o if isinstance(o, onnx.ValueInfoProto) else helper.make_empty_tensor_value_info(o)
         for o in outputs],
        [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m)
    return m


def ort_run(m, inputs):
    s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, dict(inputs))


def assert_same(got, ref, rtol=1e-5, atol=1e-6):
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert isinstance(g, np.ndarray) and g.shape == r.shape and g.dtype == r.dtype, \
            (type(g), getattr(g, "shape", None), getattr(g, "dtype", None), r.shape, r.dtype)
        if r.dtype.kind == "f":
            assert_allclose(g, r, rtol=rtol, atol=atol)
        else:
            assert_array_equal(g, r)


def check(nodes, inputs, outputs=("y",), inits=(), opset=13, **tol):
    nodes = nodes if isinstance(nodes, list) else [nodes]
    m = build(nodes, inputs, outputs, inits, opset)
    got = sb.prepare(m).run([a for _, a in inputs])
    assert_same(got, ort_run(m, inputs), **tol)
    return got


# ---------------------------------------------------------------------------------------------
# Every op against onnxruntime: (node, graph inputs, initializers, opset[, outputs]).
# Data are graph inputs (computed on the device); shapes, axes, ... are initializers.
# ---------------------------------------------------------------------------------------------

CASES = []


def case(id_, nodes, inputs, inits=(), opset=13, outputs=("y",), **tol):
    CASES.append(pytest.param(nodes, inputs, inits, opset, outputs, tol, id=id_))


_DOMAIN = {"Log": (0.2, 3.0), "Sqrt": (0.2, 3.0), "Reciprocal": (0.5, 2.0),
           "Asin": (-0.9, 0.9), "Acos": (-0.9, 0.9), "Atanh": (-0.9, 0.9), "Acosh": (1.1, 3.0)}
for _op in ["Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Relu", "Sigmoid", "Tanh",
            "Softplus", "Softsign", "Erf", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh",
            "Cosh", "Asinh", "Acosh", "Atanh", "Sign", "Ceil", "Floor", "Identity"]:
    lo, hi = _DOMAIN.get(_op, (-2.0, 2.0))
    case(_op, N(_op, ["x"], ["y"]), [("x", f32(2, 3, 4, lo=lo, hi=hi))])
case("Round", N("Round", ["x"], ["y"]),
     [("x", np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.3, -2.7, 3.49], np.float32))])
case("LeakyRelu", N("LeakyRelu", ["x"], ["y"], alpha=0.3), [("x", f32(3, 4))])
case("LeakyRelu-default", N("LeakyRelu", ["x"], ["y"]), [("x", f32(3, 4))])
case("Elu", N("Elu", ["x"], ["y"], alpha=0.7), [("x", f32(3, 4))])
case("Selu", N("Selu", ["x"], ["y"]), [("x", f32(3, 4))])
case("Selu-attrs", N("Selu", ["x"], ["y"], alpha=1.5, gamma=1.2), [("x", f32(3, 4))])
case("HardSigmoid", N("HardSigmoid", ["x"], ["y"], alpha=0.3, beta=0.4), [("x", f32(3, 4))])
case("HardSigmoid-default", N("HardSigmoid", ["x"], ["y"]), [("x", f32(3, 4, lo=-4, hi=4))])
case("HardSwish", N("HardSwish", ["x"], ["y"]), [("x", f32(3, 4, lo=-4, hi=4))], opset=14)
case("Mish", N("Mish", ["x"], ["y"]), [("x", f32(3, 4, lo=-4, hi=4))], opset=18)
case("Gelu", N("Gelu", ["x"], ["y"]), [("x", f32(3, 4))], opset=20)
case("Gelu-tanh", N("Gelu", ["x"], ["y"], approximate="tanh"), [("x", f32(3, 4))], opset=20)

for _op in ["Add", "Sub", "Mul", "Div"]:
    case(f"{_op}-broadcast", N(_op, ["a", "b"], ["y"]),
         [("a", f32(3, 4)), ("b", f32(4, lo=0.5, hi=2.0))])
    case(f"{_op}-broadcast-both", N(_op, ["a", "b"], ["y"]),
         [("a", f32(2, 1, 4)), ("b", f32(3, 1, lo=0.5, hi=2.0))])
    case(f"{_op}-int", N(_op, ["a", "b"], ["y"]),
         [("a", R.integers(-20, 20, (3, 4))), ("b", np.array([3, -2, 5, -7], np.int64))])
    case(f"{_op}-const", N(_op, ["a", "c"], ["y"]), [("a", f32(2, 3))],
         [("c", np.array(1.5, np.float32))])
case("Pow", N("Pow", ["a", "b"], ["y"]), [("a", f32(2, 3, lo=0.5)), ("b", f32(3))])
case("Pow-scalar", N("Pow", ["a", "b"], ["y"]), [("a", f32(2, 3))],
     [("b", np.array(2.0, np.float32))])
case("Pow-int-exponent", N("Pow", ["a", "b"], ["y"]), [("a", f32(2, 3))], [("b", i64(3))])
case("Pow-scalar-rank", N("Pow", ["a", "b"], ["y"]), [("a", f32(3))],
     [("b", np.full((1, 1), 2.0, np.float32))])
for _op in ["Max", "Min", "Sum", "Mean"]:
    case(_op, N(_op, ["a", "b", "c"], ["y"]), [("a", f32(2, 3, 4)), ("b", f32(3, 4)),
                                               ("c", f32(4))])
    case(f"{_op}-one", N(_op, ["a"], ["y"]), [("a", f32(2, 3))])
case("Clip", N("Clip", ["x", "lo", "hi"], ["y"]), [("x", f32(3, 4))],
     [("lo", np.array(-0.5, np.float32)), ("hi", np.array(0.7, np.float32))], opset=11)
case("Clip-max-only", N("Clip", ["x", "", "hi"], ["y"]), [("x", f32(3, 4))],
     [("hi", np.array(0.7, np.float32))])
case("Clip-none", N("Clip", ["x"], ["y"]), [("x", f32(3, 4))])
case("PRelu", N("PRelu", ["x", "s"], ["y"]), [("x", f32(2, 3, 4, 4))],
     [("s", f32(3, 1, 1))])
case("PRelu-input", N("PRelu", ["x", "s"], ["y"]), [("x", f32(2, 3, 4)), ("s", f32(4))])
for _op in ["Softmax", "LogSoftmax"]:
    case(f"{_op}-11-default", N(_op, ["x"], ["y"]), [("x", f32(2, 3, 4))], opset=11)
    case(f"{_op}-11-axis2", N(_op, ["x"], ["y"], axis=2), [("x", f32(2, 3, 4))], opset=11)
    case(f"{_op}-11-axis0", N(_op, ["x"], ["y"], axis=0), [("x", f32(2, 3, 4))], opset=11)
    case(f"{_op}-13-default", N(_op, ["x"], ["y"]), [("x", f32(2, 3, 4))])
    case(f"{_op}-13-axis1", N(_op, ["x"], ["y"], axis=1), [("x", f32(2, 3, 4))])
    case(f"{_op}-13-axis-2", N(_op, ["x"], ["y"], axis=-2), [("x", f32(2, 3, 4))])
case("Dropout-11", N("Dropout", ["x"], ["y"], ratio=0.3), [("x", f32(3, 4))], opset=11)
case("Dropout-13", N("Dropout", ["x", "r"], ["y"]), [("x", f32(3, 4))],
     [("r", np.array(0.2, np.float32))])
case("Dropout-mask", N("Dropout", ["x"], ["y", "m"]), [("x", f32(3, 4))],
     outputs=("y", "m"))
for _axis in [0, 1, 2, -1]:
    case(f"Flatten-{_axis}", N("Flatten", ["x"], ["y"], axis=_axis), [("x", f32(2, 3, 4, 5))])
case("Reshape", N("Reshape", ["x", "s"], ["y"]), [("x", f32(2, 3, 4))], [("s", i64(0, -1))])
case("Reshape-4d", N("Reshape", ["x", "s"], ["y"]), [("x", f32(2, 3, 4))],
     [("s", i64(2, 3, -1, 1))])
case("Reshape-14", N("Reshape", ["x", "s"], ["y"], allowzero=0), [("x", f32(2, 3, 4, 5))],
     [("s", i64(4, 0, -1))], opset=14)
case("Transpose", N("Transpose", ["x"], ["y"]), [("x", f32(2, 3, 4))])
case("Transpose-perm", N("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1]),
     [("x", f32(2, 3, 4, 5))])
case("Concat", N("Concat", ["a", "b", "c"], ["y"], axis=1),
     [("a", f32(2, 1, 3)), ("b", f32(2, 2, 3)), ("c", f32(2, 3, 3))])
case("Concat-neg", N("Concat", ["a", "b"], ["y"], axis=-1), [("a", f32(2, 3)), ("b", f32(2, 1))])
case("Concat-const", N("Concat", ["a", "b"], ["y"], axis=0), [("a", f32(2, 3))],
     [("b", f32(1, 3))])
case("Split-11", N("Split", ["x"], ["y", "z"], axis=1, split=[1, 3]), [("x", f32(2, 4, 3))],
     opset=11, outputs=("y", "z"))
case("Split-13-input", N("Split", ["x", "s"], ["y", "z"], axis=-1), [("x", f32(2, 5))],
     [("s", i64(2, 3))], outputs=("y", "z"))
case("Split-13-equal", N("Split", ["x"], ["y", "z"]), [("x", f32(4, 3))], outputs=("y", "z"))
case("Split-18-uneven", N("Split", ["x"], ["y", "z", "w"], axis=1, num_outputs=3),
     [("x", f32(2, 8))], opset=18, outputs=("y", "z", "w"))
_BIG = np.iinfo(np.int64).max
for _opset in [11, 13]:
    case(f"Slice-{_opset}", N("Slice", ["x", "b", "e", "a", "s"], ["y"]),
         [("x", f32(4, 5, 6))], [("b", i64(1, 0)), ("e", i64(3, _BIG)), ("a", i64(0, -1)),
                                 ("s", i64(1, 2))], opset=_opset)
    case(f"Slice-{_opset}-negative-steps", N("Slice", ["x", "b", "e", "a", "s"], ["y"]),
         [("x", f32(4, 5, 6))], [("b", i64(-1, 4)), ("e", i64(-_BIG, 0)), ("a", i64(1, 2)),
                                 ("s", i64(-1, -2))], opset=_opset)
    case(f"Slice-{_opset}-no-axes", N("Slice", ["x", "b", "e"], ["y"]),
         [("x", f32(4, 5, 6))], [("b", i64(0, -3)), ("e", i64(1, -1))], opset=_opset)
case("Slice-empty", N("Slice", ["x", "b", "e"], ["y"]), [("x", f32(4, 5))],
     [("b", i64(3)), ("e", i64(1))])
case("Squeeze-11", N("Squeeze", ["x"], ["y"], axes=[1]), [("x", f32(2, 1, 3, 1))], opset=11)
case("Squeeze-13", N("Squeeze", ["x", "a"], ["y"]), [("x", f32(2, 1, 3, 1))],
     [("a", i64(-1))])
case("Squeeze-all", N("Squeeze", ["x"], ["y"]), [("x", f32(2, 1, 3, 1))])
case("Unsqueeze-11", N("Unsqueeze", ["x"], ["y"], axes=[0, 3]), [("x", f32(2, 3))], opset=11)
case("Unsqueeze-13", N("Unsqueeze", ["x", "a"], ["y"]), [("x", f32(2, 3))],
     [("a", i64(-1, 1))])
case("Cast-float-int64", N("Cast", ["x"], ["y"], to=TensorProto.INT64),
     [("x", f32(3, 4, lo=-5, hi=5))])
case("Cast-int64-float", N("Cast", ["x"], ["y"], to=TensorProto.FLOAT),
     [("x", R.integers(-9, 9, (3, 4)))])
case("Cast-float-bool", N("Cast", ["x"], ["y"], to=TensorProto.BOOL),
     [("x", np.array([0.0, 1.5, -2.0, 0.0], np.float32))])
case("Cast-int-bool", N("Cast", ["x"], ["y"], to=TensorProto.BOOL),
     [("x", i64(0, 3, -2, 0))])
case("Cast-bool-float", N("Cast", ["x"], ["y"], to=TensorProto.FLOAT),
     [("x", np.array([True, False, True]))])
case("Cast-float16", N("Cast", ["x"], ["y"], to=TensorProto.FLOAT16), [("x", f32(3, 4))],
     rtol=1e-3)
case("Shape", N("Shape", ["x"], ["y"]), [("x", f32(2, 3, 4))])
case("Shape-15", N("Shape", ["x"], ["y"], start=1, end=-1), [("x", f32(2, 3, 4, 5))],
     opset=15)
case("Size", N("Size", ["x"], ["y"]), [("x", f32(2, 3, 4))])
case("Gather", N("Gather", ["x", "i"], ["y"]), [("x", f32(4, 3))], [("i", i64(2, 0, -1))])
case("Gather-axis1-2d", N("Gather", ["x", "i"], ["y"], axis=1), [("x", f32(2, 5, 3))],
     [("i", np.array([[0, 4], [-2, 1]], np.int64))])
case("Gather-scalar", N("Gather", ["x", "i"], ["y"], axis=-1), [("x", f32(2, 5))],
     [("i", np.array(3, np.int64))])
case("Gather-input", N("Gather", ["x", "i"], ["y"]), [("x", f32(5, 3)), ("i", i64(4, -1, 0))])
case("Tile", N("Tile", ["x", "r"], ["y"]), [("x", f32(2, 1, 3))], [("r", i64(2, 3, 1))])
case("Expand", N("Expand", ["x", "s"], ["y"]), [("x", f32(3, 1))], [("s", i64(2, 1, 4))])
case("Expand-both", N("Expand", ["x", "s"], ["y"]), [("x", f32(2, 1, 1))], [("s", i64(3, 1))])
case("Pad-constant", N("Pad", ["x", "p", "v"], ["y"]), [("x", f32(2, 3, 4))],
     [("p", i64(0, 1, 2, 1, 0, 3)), ("v", np.array(1.5, np.float32))], opset=11)
for _mode in ["reflect", "edge"]:
    case(f"Pad-{_mode}", N("Pad", ["x", "p"], ["y"], mode=_mode), [("x", f32(2, 3, 4))],
         [("p", i64(0, 1, 2, 0, 2, 1))])
case("Pad-negative", N("Pad", ["x", "p"], ["y"]), [("x", f32(3, 4))], [("p", i64(-1, 2, 1, -2))])
case("Pad-18-axes", N("Pad", ["x", "p", "", "a"], ["y"]), [("x", f32(2, 3, 4))],
     [("p", i64(1, 2, 3, 0)), ("a", i64(-1, 1))], opset=18)
case("Where", N("Where", ["c", "a", "b"], ["y"]),
     [("c", R.random((3, 1)) > 0.5), ("a", f32(3, 4)), ("b", f32(4))])
case("Where-int", N("Where", ["c", "a", "b"], ["y"]),
     [("c", R.random((3, 4)) > 0.5), ("a", R.integers(-5, 5, (3, 4))), ("b", i64(7))])
for _op in ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"]:
    _a = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    case(f"{_op}-float", N(_op, ["a", "b"], ["y"]),
         [("a", _a), ("b", np.array([2, 2, 7], np.float32))], opset=16)
    case(f"{_op}-int", N(_op, ["a", "b"], ["y"]),
         [("a", _a.astype(np.int64)), ("b", i64(1, 5, 3))], opset=16)
for _op in ["And", "Or", "Xor"]:
    case(_op, N(_op, ["a", "b"], ["y"]), [("a", R.random((3, 4)) > 0.5),
                                          ("b", R.random((4,)) > 0.5)])
case("Not", N("Not", ["a"], ["y"]), [("a", R.random((3, 4)) > 0.5)])
case("Not-of-Less", [N("Less", ["a", "b"], ["c"]), N("Not", ["c"], ["y"])],
     [("a", f32(3, 4)), ("b", f32(3, 4))])
case("ReduceSum-11", N("ReduceSum", ["x"], ["y"], axes=[1], keepdims=0),
     [("x", f32(2, 3, 4))], opset=11)
case("ReduceSum-13", N("ReduceSum", ["x", "a"], ["y"]), [("x", f32(2, 3, 4))],
     [("a", i64(-1, 0))])
case("ReduceSum-13-all", N("ReduceSum", ["x"], ["y"], keepdims=0), [("x", f32(2, 3, 4))])
case("ReduceSum-13-noop", N("ReduceSum", ["x"], ["y"], noop_with_empty_axes=1),
     [("x", f32(2, 3, 4))])
case("ReduceSum-int", N("ReduceSum", ["x", "a"], ["y"], keepdims=0),
     [("x", R.integers(-9, 9, (3, 4)))], [("a", i64(1))])
for _op in ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare"]:
    for _keep in [0, 1]:
        case(f"{_op}-13-keep{_keep}", N(_op, ["x"], ["y"], axes=[1, 2], keepdims=_keep),
             [("x", f32(2, 3, 4))])
    case(f"{_op}-18", N(_op, ["x", "a"], ["y"]), [("x", f32(2, 3, 4))], [("a", i64(-2))],
         opset=18)
    case(f"{_op}-18-all", N(_op, ["x"], ["y"], keepdims=0), [("x", f32(2, 3, 4))], opset=18)
case("ReduceProd", N("ReduceProd", ["x"], ["y"], axes=[1]), [("x", f32(2, 3, 4))])
case("ReduceProd-18", N("ReduceProd", ["x", "a"], ["y"], keepdims=0),
     [("x", R.integers(1, 5, (2, 3)))], [("a", i64(0))], opset=18)
for _mode in ["DCR", "CRD"]:
    case(f"DepthToSpace-{_mode}", N("DepthToSpace", ["x"], ["y"], blocksize=2, mode=_mode),
         [("x", f32(2, 8, 3, 4))])
case("SpaceToDepth", N("SpaceToDepth", ["x"], ["y"], blocksize=2), [("x", f32(2, 3, 4, 6))])
_RESIZE = [
    ("default-x2", {}, "scales", np.array([1, 1, 2, 2], np.float32)),
    ("asymmetric-floor", {"coordinate_transformation_mode": "asymmetric",
                          "nearest_mode": "floor"}, "scales", np.array([1, 1, 2, 3], np.float32)),
    ("sizes-fractional", {}, "sizes", i64(2, 3, 7, 5)),
    ("align-corners", {"coordinate_transformation_mode": "align_corners"}, "sizes",
     i64(2, 3, 8, 9)),
    ("pytorch-half-pixel", {"coordinate_transformation_mode": "pytorch_half_pixel"}, "scales",
     np.array([1, 1, 1.5, 2.5], np.float32)),
    ("downsample", {}, "scales", np.array([1, 1, 0.5, 0.6], np.float32)),
    ("tf-half-pixel-ceil", {"coordinate_transformation_mode": "tf_half_pixel_for_nn",
                            "nearest_mode": "ceil"}, "scales", np.array([1, 1, 3, 2], np.float32)),
    ("prefer-ceil", {"nearest_mode": "round_prefer_ceil"}, "scales",
     np.array([1, 1, 3, 1.5], np.float32)),
]
for _name, _attrs, _by, _val in _RESIZE:
    _ins = ["x", "", "v"] if _by == "scales" else ["x", "", "", "v"]
    case(f"Resize-{_name}", N("Resize", _ins, ["y"], mode="nearest", **_attrs),
         [("x", f32(2, 3, 4, 5))], [("v", _val)])
case("Resize-11-roi", N("Resize", ["x", "roi", "v"], ["y"], mode="nearest"),
     [("x", f32(1, 2, 3, 4))], [("roi", np.zeros(0, np.float32)),
                                ("v", np.array([1, 1, 2, 2], np.float32))], opset=11)
case("Resize-18-axes", N("Resize", ["x", "", "v"], ["y"], mode="nearest", axes=[2, 3]),
     [("x", f32(1, 2, 3, 4))], [("v", np.array([2, 3], np.float32))], opset=18)
case("OneHot", N("OneHot", ["i", "d", "v"], ["y"]),
     [("i", np.array([[0, 2], [-1, 1]], np.int64))],
     [("d", i64(3)), ("v", np.array([0, 1], np.float32))])
case("OneHot-axis0-int", N("OneHot", ["i", "d", "v"], ["y"], axis=0),
     [("i", i64(0, 3, 1))], [("d", i64(4)), ("v", i64(-1, 5))])
case("NonZero", N("NonZero", ["x"], ["y"]),
     [("x", np.array([[0, 1.5, 0], [2, 0, -1]], np.float32))])
for _eq, _shapes in [("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
                     ("ij->ji", [(3, 4)]), ("ij,kj->ik", [(3, 4), (5, 4)]),
                     ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
                     ("ij,j->i", [(3, 4), (4,)]), ("ij,jk", [(3, 4), (4, 5)]),
                     ("ij->", [(3, 4)]), ("i,i->", [(5,), (5,)]), ("ijk->j", [(2, 3, 4)])]:
    _names = ["a", "b"][:len(_shapes)]
    case(f"Einsum-{_eq}", N("Einsum", _names, ["y"], equation=_eq),
         [(n, f32(*s)) for n, s in zip(_names, _shapes)])
case("LayerNormalization", N("LayerNormalization", ["x", "s", "b"], ["y"]),
     [("x", f32(2, 3, 4))], [("s", f32(4)), ("b", f32(4))], opset=17)
case("LayerNormalization-axis1", N("LayerNormalization", ["x", "s"], ["y", "m", "r"], axis=1,
                                   epsilon=1e-3),
     [("x", f32(2, 3, 4))], [("s", f32(3, 4))], opset=17, outputs=("y", "m", "r"), rtol=1e-4)
_CONV = [
    ("default", {}, (2, 4, 7, 7), (6, 4, 3, 3)),
    ("pads-strides", {"pads": [1, 1, 1, 1], "strides": [2, 2]}, (2, 4, 7, 7), (6, 4, 3, 3)),
    ("asymmetric-pads", {"pads": [0, 1, 2, 1]}, (2, 4, 6, 7), (6, 4, 3, 3)),
    ("dilations", {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, (2, 4, 7, 7), (6, 4, 3, 3)),
    ("group", {"group": 2, "strides": [1, 2]}, (2, 4, 7, 7), (6, 2, 3, 3)),
    ("depthwise", {"group": 4, "pads": [1, 1, 1, 1]}, (2, 4, 5, 5), (4, 1, 3, 3)),
    ("same-upper", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (2, 4, 7, 8), (6, 4, 3, 3)),
    ("same-lower", {"auto_pad": "SAME_LOWER"}, (2, 4, 5, 5), (6, 4, 2, 2)),
    ("valid", {"auto_pad": "VALID", "strides": [2, 1]}, (2, 4, 7, 7), (6, 4, 3, 3)),
    ("kernel-shape", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (2, 4, 5, 5), (6, 4, 3, 3)),
    ("1d", {"pads": [1, 2], "strides": [2]}, (2, 4, 9), (5, 4, 3)),
    ("1d-same", {"auto_pad": "SAME_UPPER", "strides": [2]}, (2, 4, 9), (5, 4, 3)),
]
for _name, _attrs, _xs, _ws in _CONV:
    case(f"Conv-{_name}", N("Conv", ["x", "w", "b"], ["y"], **_attrs), [("x", f32(*_xs))],
         [("w", f32(*_ws)), ("b", f32(_ws[0]))], rtol=1e-4, atol=1e-5)
case("Conv-no-bias", N("Conv", ["x", "w"], ["y"]), [("x", f32(1, 3, 5, 5))],
     [("w", f32(2, 3, 3, 3))], rtol=1e-4, atol=1e-5)
case("Conv-weight-input", N("Conv", ["x", "w"], ["y"]), [("x", f32(1, 3, 5, 5)),
                                                         ("w", f32(2, 3, 3, 3))],
     rtol=1e-4, atol=1e-5)
for _name, _xs in [("4d", (2, 3, 4, 5)), ("2d", (4, 3)), ("3d", (2, 3, 5))]:
    case(f"BatchNormalization-{_name}", N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"],
                                          epsilon=1e-3),
         [("x", f32(*_xs))], [("s", f32(3)), ("b", f32(3)), ("m", f32(3)),
                              ("v", f32(3, lo=0.5, hi=2.0))], rtol=1e-4, atol=1e-5)
_POOL = [
    ("MaxPool", "k2", {"kernel_shape": [2, 2]}, (2, 3, 6, 6)),
    ("MaxPool", "k3s2p1", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
     (2, 3, 7, 7)),
    ("MaxPool", "asymmetric", {"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 0, 0, 1]},
     (2, 3, 5, 6)),
    ("MaxPool", "ceil", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
     (2, 3, 7, 5)),
    ("MaxPool", "end-pads-k2s2", {"kernel_shape": [2, 2], "strides": [2, 2],
                                  "pads": [0, 0, 1, 1]}, (2, 3, 5, 4)),
    ("MaxPool", "ceil-pads", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                              "ceil_mode": 1}, (1, 2, 6, 8)),
    ("MaxPool", "ceil-last-window", {"kernel_shape": [1, 1], "strides": [2, 2],
                                     "ceil_mode": 1}, (1, 2, 4, 5)),
    ("MaxPool", "same-upper", {"kernel_shape": [3, 3], "strides": [2, 2],
                               "auto_pad": "SAME_UPPER"}, (2, 3, 7, 6)),
    ("MaxPool", "valid", {"kernel_shape": [2, 2], "auto_pad": "VALID"}, (2, 3, 5, 5)),
    ("MaxPool", "1d", {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, (2, 3, 9)),
    ("AveragePool", "k2s2", {"kernel_shape": [2, 2], "strides": [2, 2]}, (2, 3, 6, 6)),
    ("AveragePool", "pads-include", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                     "count_include_pad": 1}, (2, 3, 5, 5)),
    ("AveragePool", "pads-exclude", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
     (2, 3, 5, 5)),
    ("AveragePool", "end-pads-k2s2", {"kernel_shape": [2, 2], "strides": [2, 2],
                                      "pads": [0, 0, 1, 1]}, (2, 3, 5, 4)),
    ("AveragePool", "same-upper", {"kernel_shape": [3, 3], "strides": [2, 2],
                                   "auto_pad": "SAME_UPPER"}, (2, 3, 7, 6)),
    ("AveragePool", "1d", {"kernel_shape": [2], "strides": [2]}, (2, 3, 8)),
]
for _op, _name, _attrs, _xs in _POOL:
    case(f"{_op}-{_name}", N(_op, ["x"], ["y"], **_attrs), [("x", f32(*_xs))])
for _op in ["GlobalAveragePool", "GlobalMaxPool"]:
    case(_op, N(_op, ["x"], ["y"]), [("x", f32(2, 3, 5, 4))])
    case(f"{_op}-1d", N(_op, ["x"], ["y"]), [("x", f32(2, 3, 5))])
case("Gemm", N("Gemm", ["a", "b"], ["y"]), [("a", f32(3, 5))], [("b", f32(5, 4))])
case("Gemm-trans", N("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1, alpha=0.5, beta=2.0),
     [("a", f32(5, 3))], [("b", f32(4, 5)), ("c", f32(4))])
case("Gemm-c-column", N("Gemm", ["a", "b", "c"], ["y"]), [("a", f32(3, 5)), ("b", f32(5, 4))],
     [("c", f32(3, 1))])
case("Gemm-c-scalar", N("Gemm", ["a", "b", "c"], ["y"], beta=0.5),
     [("a", f32(3, 5)), ("b", f32(5, 4)), ("c", f32(1))])
for _sa, _sb in [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 2)),
                 ((4,), (4, 5)), ((2, 3, 4), (4,)), ((4,), (4,))]:
    case(f"MatMul-{_sa}-{_sb}", N("MatMul", ["a", "b"], ["y"]), [("a", f32(*_sa)),
                                                                 ("b", f32(*_sb))], rtol=1e-5)
case("ArgMax", N("ArgMax", ["x"], ["y"], axis=1, keepdims=0), [("x", f32(3, 4, 5))])
case("ArgMin", N("ArgMin", ["x"], ["y"], axis=-1), [("x", f32(3, 4, 5))])
case("Range-input", N("Range", ["a", "b", "c"], ["y"]),
     [("a", np.array(2, np.int64)), ("b", np.array(11, np.int64)), ("c", np.array(3, np.int64))])
case("ConstantOfShape-input", N("ConstantOfShape", ["s"], ["y"],
                                value=numpy_helper.from_array(np.array([2.5], np.float32))),
     [("s", i64(2, 3))])


@pytest.mark.parametrize("nodes, inputs, inits, opset, outputs, tol", CASES)
def test_op_matches_onnxruntime(nodes, inputs, inits, opset, outputs, tol):
    check(nodes, inputs, outputs, inits, opset, **tol)


# ---- the same ops evaluated on the host: every input is a constant ----

HOST_CASES = [
    ("Add-int", N("Add", ["a", "b"], ["y"]), [("a", i64(1, 2, 3)), ("b", i64(10))]),
    ("Sub", N("Sub", ["a", "b"], ["y"]), [("a", f32(2, 3)), ("b", f32(3))]),
    ("Mul", N("Mul", ["a", "b"], ["y"]), [("a", i64(2, -3)), ("b", i64(4, 5))]),
    ("Div-int", N("Div", ["a", "b"], ["y"]), [("a", i64(7, -7, 7, -7, 6)),
                                             ("b", i64(2, 2, -2, -2, 3))]),
    ("Div-float", N("Div", ["a", "b"], ["y"]), [("a", f32(4)), ("b", f32(4, lo=0.5))]),
    ("Gather", N("Gather", ["a", "i"], ["y"]), [("a", i64(5, 6, 7)), ("i", i64(-1, 0))]),
    ("Slice", N("Slice", ["a", "b", "e", "x", "s"], ["y"]),
     [("a", f32(4, 5)), ("b", i64(-1)), ("e", i64(-_BIG)), ("x", i64(1)), ("s", i64(-2))]),
    ("Concat", N("Concat", ["a", "b"], ["y"], axis=0), [("a", i64(1, 2)), ("b", i64(3))]),
    ("Cast", N("Cast", ["a"], ["y"], to=TensorProto.FLOAT), [("a", i64(1, 2))]),
    ("Unsqueeze", N("Unsqueeze", ["a", "x"], ["y"]), [("a", i64(4)), ("x", i64(0))]),
    ("Squeeze", N("Squeeze", ["a", "x"], ["y"]), [("a", np.ones((1, 3), np.int64)),
                                                  ("x", i64(0))]),
    ("Equal", N("Equal", ["a", "b"], ["y"]), [("a", i64(1, 2, 3)), ("b", i64(2))]),
    ("Less", N("Less", ["a", "b"], ["y"]), [("a", i64(1, 2, 3)), ("b", i64(2))]),
    ("Where", N("Where", ["c", "a", "b"], ["y"]), [("c", np.array([True, False])),
                                                   ("a", i64(1, 2)), ("b", i64(-1))]),
    ("Not", N("Not", ["c"], ["y"]), [("c", np.array([True, False]))]),
    ("Expand", N("Expand", ["a", "s"], ["y"]), [("a", i64(3)), ("s", i64(2, 2))]),
    ("Reshape", N("Reshape", ["a", "s"], ["y"]), [("a", f32(2, 6)), ("s", i64(3, -1))]),
    ("ConstantOfShape", N("ConstantOfShape", ["s"], ["y"],
                          value=numpy_helper.from_array(i64(7))), [("s", i64(2, 2))]),
    ("Range", N("Range", ["a", "b", "c"], ["y"]),
     [("a", np.array(1.0, np.float32)), ("b", np.array(2.0, np.float32)),
      ("c", np.array(0.25, np.float32))]),
    ("ReduceProd", N("ReduceProd", ["a"], ["y"], keepdims=0), [("a", i64(2, 3, 4))]),
    ("Shape", N("Shape", ["a"], ["y"]), [("a", f32(2, 3))]),
    ("Size", N("Size", ["a"], ["y"]), [("a", f32(2, 3))]),
    ("NonZero", N("NonZero", ["a"], ["y"]), [("a", i64(0, 3, 0, 4))]),
    ("Identity", N("Identity", ["a"], ["y"]), [("a", i64(0, 3))]),
    ("Mod", N("Mod", ["a", "b"], ["y"]), [("a", i64(7, -7, 7, -7)), ("b", i64(3, 3, -3, -3))]),
    ("Transpose", N("Transpose", ["a"], ["y"], perm=[1, 0]), [("a", i64(1, 2, 3).reshape(1, 3))]),
    ("Transpose-default", N("Transpose", ["a"], ["y"]), [("a", f32(2, 3, 4))]),
    ("Flatten", N("Flatten", ["a"], ["y"], axis=-1), [("a", f32(2, 3, 4))]),
    ("Flatten-0", N("Flatten", ["a"], ["y"], axis=0), [("a", i64(1, 2, 3))]),
    ("Max", N("Max", ["a", "b", "c"], ["y"]), [("a", i64(1, 5)), ("b", i64(3)), ("c", i64(2, 2))]),
    ("Min", N("Min", ["a", "b"], ["y"]), [("a", f32(2, 3)), ("b", f32(3))]),
    ("Neg-int", N("Neg", ["a"], ["y"]), [("a", i64(1, -2))]),
    ("Abs-int", N("Abs", ["a"], ["y"]), [("a", i64(1, -2))]),
    ("Sign", N("Sign", ["a"], ["y"]), [("a", np.array([-2.0, 0.0, 3.0], np.float32))]),
    ("Ceil", N("Ceil", ["a"], ["y"]), [("a", f32(5))]),
    ("Floor", N("Floor", ["a"], ["y"]), [("a", f32(5))]),
    ("Sqrt", N("Sqrt", ["a"], ["y"]), [("a", np.array([64.0, 2.0], np.float32))]),
    ("Reciprocal", N("Reciprocal", ["a"], ["y"]), [("a", f32(4, lo=0.5))]),
    ("Tile", N("Tile", ["a", "r"], ["y"]), [("a", i64(1, 2).reshape(1, 2)), ("r", i64(2, 3))]),
    ("Mod-fmod", N("Mod", ["a", "b"], ["y"], fmod=1),
     [("a", np.array([7.5, -7.5, 7.5], np.float32)), ("b", np.array([2, 2, -2], np.float32))]),
]


@pytest.mark.parametrize("node, inits", [pytest.param(n, i, id=k) for k, n, i in HOST_CASES])
def test_host_op_matches_onnxruntime(node, inits):
    m = build([node], [], inits=inits)
    rep = sb.prepare(m)
    got = rep.run([])
    assert_same(got, ort_run(m, []))
    assert rep._ctx._consts == {}  # computed on the host: no tensor was made


@pytest.mark.parametrize("kind", ["value", "value_float", "value_floats", "value_int",
                                  "value_ints"])
def test_constant(kind):
    v = {"value": numpy_helper.from_array(f32(2, 3)), "value_float": 1.5,
         "value_floats": [1.0, 2.5], "value_int": 4, "value_ints": [1, -2, 3]}[kind]
    check([N("Constant", [], ["c"], **{kind: v}), N("Identity", ["c"], ["y"])], [])
    check([N("Constant", [], ["c"], **{kind: v}), N("Add", ["x", "c"], ["y"])],
          [("x", np.ones(1, np.float32 if "float" in kind or kind == "value" else np.int64))])


# ---------------------------------------------------------------------------------------------
# Shape chains computed on the host (PyTorch's flatten), also in a recorded graph
# ---------------------------------------------------------------------------------------------

def shape_chain_model(n_in=12, n_out=3, opset=13):
    """y = (reshape(x, [x.shape[0], -1]) * half) @ W + b, the shape and `half` (a constant
    of the batch's shape) computed in-graph."""
    nodes = [
        N("Shape", ["x"], ["s"]),
        N("Gather", ["s", "zero"], ["n"], axis=0),
        N("Unsqueeze", ["n", "axes0"], ["n1"]),
        N("Concat", ["n1", "minus1"], ["shape"], axis=0),
        N("Reshape", ["x", "shape"], ["flat"]),
        N("Shape", ["flat"], ["fs"]),
        N("ConstantOfShape", ["fs"], ["half"],
          value=numpy_helper.from_array(np.array([0.5], np.float32))),
        N("Mul", ["flat", "half"], ["scaled"]),
        N("MatMul", ["scaled", "W"], ["mm"]),
        N("Add", ["mm", "b"], ["y"]),
    ]
    inits = [("zero", np.array(0, np.int64)), ("axes0", i64(0)), ("minus1", i64(-1)),
             ("W", f32(n_in, n_out, lo=-0.5, hi=0.5)), ("b", f32(n_out, lo=-0.1, hi=0.1))]
    g = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])],
        [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_shape_chain_matches_onnxruntime_for_any_batch():
    m = shape_chain_model()
    rep = sb.prepare(m)
    for n in (2, 5):
        x = f32(n, 3, 2, 2)
        assert_same(rep.run([x]), ort_run(m, [("x", x)]))


def train_steps(onnx_model, xs, ys, use_graph, lr=0.1, momentum=0.0, compile_with=None):
    dev = device.get_default_device()
    m = Trainer(onnx_model)
    m.set_optimizer(opt.SGD(lr=lr, momentum=momentum))
    m.compile([tensor.from_numpy(xs[0] if compile_with is None else compile_with)],
              is_train=True, use_graph=use_graph)
    tx = tensor.Tensor(xs[0].shape, dev)
    ty = tensor.Tensor(ys[0].shape, dev, dtype=tensor.int32)
    losses = []
    for x, y in zip(xs, ys):
        tx.copy_from_numpy(x)
        ty.copy_from_numpy(y)
        _, loss = m(tx, ty)
        losses.append(loss.item())
    nodes = dev.graph_node_names() if use_graph else None
    params = {k: v.to_numpy() for k, v in m.get_states().items()}
    m.graph(False)
    m.eval()
    return losses, params, nodes


def test_shape_chain_trains_in_a_recorded_graph():
    m = shape_chain_model()
    rng = np.random.default_rng(5)  # its own: R's state depends on the tests collected
    xs = [rng.uniform(-2, 2, (4, 3, 2, 2)).astype(np.float32)] * 3  # one batch, three steps
    ys = [rng.integers(0, 3, 4).astype(np.int32)] * 3
    eager = train_steps(m, xs, ys, use_graph=False)
    # compiled on another batch size: `half` is first made while the step records
    graph = train_steps(m, xs, ys, use_graph=True, compile_with=f32(2, 3, 2, 2))
    assert_allclose(graph[0], eager[0], rtol=1e-5)
    for k in eager[1]:
        assert_allclose(graph[1][k], eager[1][k], rtol=1e-5, atol=1e-7)
    assert eager[0][2] < eager[0][0]  # it learns
    assert graph[2] and "CopyFromHost" not in graph[2], graph[2]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

def test_unsupported_op_names_the_node():
    m = build([N("Hardmax", ["x"], ["y"], name="hm")], [("x", f32(2, 3))])
    with pytest.raises(NotImplementedError, match=r"node 'hm' \(Hardmax\).*'Hardmax'.*supported"
                       r".*Conv"):
        sb.prepare(m)
    with pytest.raises(NotImplementedError, match="Hardmax"):
        sb.get_op(m.graph.node[0])


@pytest.mark.parametrize("node, inputs, inits, opset, match", [
    (N("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], dilations=[2, 2]),
     [("x", f32(1, 1, 6, 6))], [], 13, "dilations"),
    (N("AveragePool", ["x"], ["y"], name="p", kernel_shape=[2, 2], ceil_mode=1),
     [("x", f32(1, 1, 5, 5))], [], 13, "ceil_mode"),
    (N("MaxPool", ["x"], ["y", "i"], name="p", kernel_shape=[2, 2]),
     [("x", f32(1, 1, 4, 4))], [], 13, "Indices"),
    (N("Conv", ["x", "w"], ["y"], name="p", kernel_shape=[1, 1, 1]),
     [("x", f32(1, 1, 2, 2, 2))], [("w", f32(1, 1, 1, 1, 1))], 13, "1-d and 2-d"),
    (N("Resize", ["x", "", "s"], ["y"], name="p", mode="linear"),
     [("x", f32(1, 1, 2, 2))], [("s", np.array([1, 1, 2, 2], np.float32))], 13, "linear"),
    (N("Resize", ["x", "", "s"], ["y"], name="p", coordinate_transformation_mode="half_pixel_sym"
       "metric"), [("x", f32(1, 1, 2, 2))], [("s", np.array([1, 1, 2, 2], np.float32))], 19,
     "half_pixel_symmetric"),
    (N("Pad", ["x", "p"], ["y"], name="p", mode="wrap"),
     [("x", f32(2, 2))], [("p", i64(1, 1, 1, 1))], 19, "wrap"),
    (N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"], name="p",
       training_mode=1),
     [("x", f32(2, 3))], [(k, f32(3, lo=0.5)) for k in "sbmv"], 15, "training_mode"),
    (N("ArgMax", ["x"], ["y"], name="p", select_last_index=1),
     [("x", f32(2, 3))], [], 13, "select_last_index"),
    (N("Cast", ["x"], ["y"], name="p", to=TensorProto.COMPLEX64),
     [("x", f32(2, 3))], [], 13, "COMPLEX64"),
])
def test_unsupported_attribute_names_node_and_attribute(node, inputs, inits, opset, match):
    m = build([node], inputs, node.output, inits, opset)
    with pytest.raises(ValueError, match=rf"node 'p' \({node.op_type}\): .*{match}"):
        sb.prepare(m)


def test_unknown_attribute_is_refused():
    node = N("Relu", ["x"], ["y"], name="r", alpha=2.0)  # Relu has no attributes
    with pytest.raises(ValueError, match=r"node 'r' \(Relu\).*alpha"):
        sb.get_op(node)


def test_wrong_inputs():
    rep = sb.prepare(build([N("Relu", ["x"], ["y"])], [("x", f32(2, 3))]))
    with pytest.raises(ValueError, match=r"1 input\(s\) \['x'\], got 2"):
        rep.run([f32(2, 3), f32(2, 3)])
    with pytest.raises(ValueError, match=r"'x'.*expected shape \(2, 3\).*got \(3, 2\)"):
        rep.run([f32(3, 2)])
    with pytest.raises(ValueError, match=r"'x'.*expected shape \(2, 3\).*got \(2, 3, 1\)"):
        rep.run([f32(2, 3, 1)])
    free = sb.prepare(shape_chain_model())
    with pytest.raises(ValueError, match=r"expected shape \('\?', 3, 2, 2\)"):
        free.run([f32(2, 3, 2, 3)])


def test_reshape_by_a_device_value_is_refused():
    # the shape is computed on the device (an Add of a graph input): never read back
    m = build([N("Add", ["s", "zero"], ["s2"]), N("Reshape", ["x", "s2"], ["y"], name="rs")],
              [("x", f32(2, 6)), ("s", i64(3, 4))], inits=[("zero", i64(0))],
              outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    with pytest.raises(ValueError, match=r"node 'rs' \(Reshape\): input 1 \('s2'\) must be known "
                                         "on the host"):
        sb.prepare(m).run([f32(2, 6), i64(3, 4)])
    # a shape that is a graph input: fine as numpy, refused as a device Tensor
    m = build([N("Reshape", ["x", "s"], ["y"], name="rs")], [("x", f32(2, 6)), ("s", i64(3, 4))],
              outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])])
    rep = sb.prepare(m)
    assert rep.run([f32(2, 6), i64(3, 4)])[0].shape == (3, 4)
    with pytest.raises(ValueError, match=r"node 'rs' \(Reshape\): input 1 \('s'\)"):
        rep.run([tensor.from_numpy(f32(2, 6)), tensor.from_numpy(i64(3, 4))])


def test_host_only_op_refuses_a_device_tensor():
    m = build([N("Mod", ["a", "b"], ["y"], name="md")], [("a", i64(7, 8)), ("b", i64(3))])
    rep = sb.prepare(m)
    assert_array_equal(rep.run([i64(7, 8), i64(3)])[0], [1, 2])  # numpy inputs: on the host
    with pytest.raises(ValueError, match=r"node 'md' \(Mod\): Mod is computed on the host only, "
                                         r"but input 0 \('a'\) is a device tensor"):
        rep.run([tensor.from_numpy(i64(7, 8)), i64(3)])


def test_opset_out_of_range():
    m = build([N("Relu", ["x"], ["y"])], [("x", f32(2))], opset=10)
    with pytest.raises(ValueError, match="opset 10"):
        sb.prepare(m)


def test_device_argument():
    m = build([N("Relu", ["x"], ["y"])], [("x", f32(2))])
    assert sb.prepare(m, device.get_default_device()).device == device.get_default_device()
    if device.cuda_available():
        assert sb.prepare(m, "CUDA").device != device.get_default_device()
    else:
        with pytest.raises(RuntimeError, match="CUDA"):
            sb.prepare(m, "CUDA")
    with pytest.raises(ValueError, match="device"):
        sb.prepare(m, "TPU")


# ---------------------------------------------------------------------------------------------
# The backend API: run_node, get_op, Tensors in and out, partial runs, files
# ---------------------------------------------------------------------------------------------

def test_run_node():
    x = f32(2, 6)
    y, = sb.run_node(N("Reshape", ["x", "s"], ["y"]), [x, i64(3, -1)])
    assert_array_equal(y, x.reshape(3, 4))
    lt, = sb.run_node(N("Less", ["a", "b"], ["y"]), [x, np.zeros(6, np.float32)])
    assert lt.dtype == np.bool_ and (lt == (x < 0)).all()
    y, z = sb.run_node(N("Split", ["x"], ["y", "z"], axis=1, split=[2, 4]), [x], opset_version=11)
    assert_array_equal(z, x[:, 2:])
    assert sb.SingaBackend.supports_device("CPU")


def test_get_op_runs_on_tensors():
    op = sb.SingaBackend._onnx_node_to_singa_op(N("LeakyRelu", ["x"], ["y"], alpha=0.5))
    x = f32(3)
    ctx = sb._Context(device.get_default_device())
    y, = op(ctx, [tensor.from_numpy(x)])
    assert_allclose(y.to_numpy(), np.where(x > 0, x, 0.5 * x), rtol=1e-6)


def test_tensor_inputs_give_tensors_and_partial_runs(tmp_path):
    m = build([N("Relu", ["x"], ["r"]), N("Neg", ["r"], ["n"]), N("Shape", ["n"], ["y"])],
              [("x", f32(2, 3))], outputs=("y",))
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    rep = sb.prepare(path)
    x = f32(2, 3)
    out = rep.run([tensor.from_numpy(x)], aux_output=("r",))
    assert all(isinstance(o, tensor.Tensor) for o in out)
    assert_array_equal(out[0].to_numpy(), [2, 3])
    assert_allclose(out[1].to_numpy(), np.maximum(x, 0))
    first = rep.run([x], last_layers=1)  # Relu only: its output
    assert len(first) == 1
    assert_allclose(first[0], np.maximum(x, 0))
    two = rep.run([x], last_layers=-1, aux_output=("r",))  # Relu and Neg, then r
    assert len(two) == 2
    assert_allclose(two[0], -np.maximum(x, 0))
    assert_allclose(two[1], np.maximum(x, 0))
    with pytest.raises(ValueError, match="'nope'"):
        rep.run([x], aux_output=("nope",))
    assert rep.inputs == ["x"] and rep.outputs == ["y"]
    assert_array_equal(rep.run({"x": x})[0], [2, 3])


def test_constants_are_made_once_per_rep():
    m = build([N("Add", ["x", "c"], ["y"])], [("x", f32(2, 3))], inits=[("c", f32(3))])
    rep = sb.prepare(m)
    rep.run([f32(2, 3)])
    made = {k: id(v[1]) for k, v in rep._ctx._consts.items()}
    rep.run([f32(2, 3)])
    assert made and made == {k: id(v[1]) for k, v in rep._ctx._consts.items()}


def test_batchnorm_in_a_rep_ignores_the_training_switch_for_numpy():
    m = build([N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])], [("x", f32(4, 3))],
              inits=[("s", f32(3)), ("b", f32(3)), ("m", f32(3)), ("v", f32(3, lo=0.5))])
    x = f32(4, 3)
    ref = ort_run(m, [("x", x)])
    with autograd.train_mode():
        assert_same(sb.prepare(m).run([x]), ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# SONNXModel
# ---------------------------------------------------------------------------------------------

def cnn_model(momentum=0.9):
    """conv -> batch norm -> relu -> max pool -> flatten -> gemm (weights named as PyTorch's)."""
    nodes = [
        N("Conv", ["x", "conv1.weight", "conv1.bias"], ["c"], pads=[1, 1, 1, 1]),
        N("BatchNormalization", ["c", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                 "bn1.running_var"], ["bn"], momentum=momentum, epsilon=1e-5),
        N("Relu", ["bn"], ["r"]),
        N("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        N("Flatten", ["p"], ["f"]),
        N("Gemm", ["f", "fc.weight", "fc.bias"], ["y"], transB=1),
    ]
    inits = [("conv1.weight", f32(4, 2, 3, 3, lo=-0.4, hi=0.4)),
             ("conv1.bias", f32(4, lo=-0.1, hi=0.1)), ("bn1.weight", f32(4, lo=0.5, hi=1.5)),
             ("bn1.bias", f32(4, lo=-0.2, hi=0.2)), ("bn1.running_mean", f32(4, lo=-0.1, hi=0.1)),
             ("bn1.running_var", f32(4, lo=0.5, hi=1.5)),
             ("fc.weight", f32(5, 16, lo=-0.3, hi=0.3)), ("fc.bias", f32(5, lo=-0.1, hi=0.1))]
    g = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), dict(inits)


def test_sonnx_model_forward_matches_onnxruntime():
    m, _ = cnn_model()
    x = f32(3, 2, 4, 4)
    sm = sb.SONNXModel(m)
    tx = tensor.from_numpy(x)
    sm.compile([tx], is_train=False)
    out = sm.forward(tx)
    assert isinstance(out, list) and len(out) == 1
    assert_allclose(out[0].to_numpy(), ort_run(m, [("x", x)])[0], rtol=1e-4, atol=1e-5)
    assert_allclose(sm(tx)[0].to_numpy(), out[0].to_numpy())
    feat, = sm.forward(tx, aux_output=("f",))[1:]
    assert feat.shape == (3, 16)


def test_sonnx_model_parameters_and_states():
    m, inits = cnn_model()
    sm = sb.SONNXModel(m)
    assert set(sm.get_params()) == {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                    "fc.weight", "fc.bias"}
    assert set(sm.get_states()) == set(sm.get_params()) | {"bn1.running_mean",
                                                           "bn1.running_var"}
    for k, t in sm.get_states().items():
        assert_array_equal(t.to_numpy(), inits[k])
        assert t.stores_grad == (k in sm.get_params())


class Native(model.Model):
    """cnn_model built from minisinga's layers."""

    def __init__(self):
        super().__init__()
        self.conv = layer.Conv2d(4, 3, padding=1)
        self.bn = layer.BatchNorm2d(momentum=0.9)
        self.pool = layer.MaxPool2d(2, 2)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(5)

    def forward(self, x):
        return self.fc(self.flat(self.pool(autograd.relu(self.bn(self.conv(x))))))

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = autograd.softmax_cross_entropy(out, y)
        self.optimizer(loss)
        return out, loss


_NATIVE_NAMES = {"conv.W": "conv1.weight", "conv.b": "conv1.bias", "bn.scale": "bn1.weight",
                 "bn.bias": "bn1.bias", "bn.running_mean": "bn1.running_mean",
                 "bn.running_var": "bn1.running_var", "fc.W": "fc.weight", "fc.b": "fc.bias"}


def test_sonnx_model_training_step_matches_native_layers():
    m, inits = cnn_model()
    x, y = f32(6, 2, 4, 4), R.integers(0, 5, 6).astype(np.int32)
    tx, ty = tensor.from_numpy(x), tensor.from_numpy(y)
    nat = Native()
    nat.set_optimizer(opt.SGD(lr=0.1))
    nat.compile([tx], is_train=True)
    for k, name in _NATIVE_NAMES.items():
        v = inits[name].T if k == "fc.W" else inits[name]
        nat.get_states()[k].copy_from_numpy(v)
    son = Trainer(m)
    son.set_optimizer(opt.SGD(lr=0.1))
    son.compile([tx], is_train=True)
    _, loss_n = nat(tx, ty)
    _, loss_s = son(tx, ty)
    assert_allclose(loss_s.item(), loss_n.item(), rtol=1e-5)
    for k, name in _NATIVE_NAMES.items():
        want = nat.get_states()[k].to_numpy()
        got = son.get_states()[name].to_numpy()
        assert_allclose(got.T if k == "fc.W" else got, want, rtol=1e-4, atol=1e-6, err_msg=k)
        if name != "conv1.bias":  # batch norm cancels the conv bias: no gradient
            assert not np.allclose(got, inits[name]), name


def test_sonnx_model_gradient_matches_finite_differences():
    nodes = [N("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1]), N("Tanh", ["c"], ["t"]),
             N("Flatten", ["t"], ["f"]), N("MatMul", ["f", "W"], ["mm"]),
             N("Add", ["mm", "b"], ["y"])]
    inits = [("w", f32(3, 2, 3, 3, lo=-0.5, hi=0.5)), ("cb", f32(3, lo=-0.1, hi=0.1)),
             ("W", f32(27, 4, lo=-0.5, hi=0.5)), ("b", f32(4, lo=-0.1, hi=0.1))]
    m = build(nodes, [("x", f32(2, 2, 3, 3))], inits=inits)
    sm = sb.SONNXModel(m)
    assert set(sm.get_params()) == {"w", "cb", "W", "b"}
    tx = tensor.from_numpy(f32(2, 2, 3, 3))
    ty = tensor.from_numpy(np.array([1, 3], np.int32))
    sm.compile([tx], is_train=False)

    def loss():
        return autograd.softmax_cross_entropy(sm.forward(tx)[0], ty)

    with autograd.train_mode():
        grads = {p.name: g.to_numpy() for p, g in autograd.backward(loss())}
    assert set(grads) == {"w", "cb", "W", "b"}
    eps = 1e-2
    for name, idx in [("w", (1, 0, 2, 1)), ("W", (5, 2)), ("cb", (2,))]:
        p = sm.get_params()[name]
        base = p.to_numpy()
        vals = []
        for sign in (1, -1):
            v = base.copy()
            v[idx] += sign * eps
            p.copy_from_numpy(v)
            vals.append(loss().item())
        p.copy_from_numpy(base)
        fd = (vals[0] - vals[1]) / (2 * eps)
        assert fd == pytest.approx(grads[name][idx], rel=2e-2, abs=1e-4), name


def test_sonnx_model_graph_mode_equals_eager():
    m, _ = cnn_model()
    xs = [f32(4, 2, 4, 4) for _ in range(3)]
    ys = [R.integers(0, 5, 4).astype(np.int32) for _ in range(3)]
    eager = train_steps(m, xs, ys, use_graph=False, momentum=0.9)
    graph = train_steps(m, xs, ys, use_graph=True, momentum=0.9)
    assert_allclose(graph[0], eager[0], rtol=1e-5)
    assert set(graph[1]) == set(eager[1])
    for k in eager[1]:
        assert_allclose(graph[1][k], eager[1][k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert "CopyFromHost" not in graph[2]


def test_sonnx_model_save_and_load_states(tmp_path):
    m, inits = cnn_model()
    tx = tensor.from_numpy(f32(2, 2, 4, 4))
    for fmt in ("minisinga", "singa"):
        sm = sb.SONNXModel(m)
        sm.compile([tx], is_train=False)
        path = str(tmp_path / f"states-{fmt}.zip")
        sm.save_states(path, format=fmt)
        for t in sm.get_states().values():
            t.set_value(0.0)
        sm.load_states(path)
        for k, t in sm.get_states().items():
            assert_array_equal(t.to_numpy(), inits[k], err_msg=k)


def test_sonnx_model_name_clash_and_dropout():
    nodes = [N("MatMul", ["x", "training"], ["mm"]), N("Dropout", ["mm", "r"], ["y"])]
    m = build(nodes, [("x", f32(64, 8))], inits=[("training", f32(8, 32)),
                                                  ("r", np.array(0.5, np.float32))])
    sm = sb.SONNXModel(m)
    assert set(sm.get_params()) == {"training_"} and sm.onnx_names == {"training_": "training"}
    tx = tensor.from_numpy(np.ones((64, 8), np.float32))
    sm.compile([tx], is_train=False)
    assert sm.training is False
    ref = sm.forward(tx)[0].to_numpy()
    with autograd.train_mode():
        dropped = sm.forward(tx)[0].to_numpy()
    zeros = np.mean(dropped == 0)
    assert 0.3 < zeros < 0.7
    kept = dropped != 0
    assert_allclose(dropped[kept], 2 * ref[kept], rtol=1e-5)


def test_sonnx_model_trains_an_embedding_table():
    """A float table that Gather reads by row (PyTorch's nn.Embedding) is a parameter: an SGD
    step changes the rows looked up and no other."""
    table = f32(6, 3)
    nodes = [N("Gather", ["E", "i"], ["g"], axis=0), N("Flatten", ["g"], ["f"]),
             N("MatMul", ["f", "W"], ["y"])]
    m = build(nodes, [("i", i64(0, 4).astype(np.int32).reshape(1, 2))],
              inits=[("E", table), ("W", f32(6, 2))])
    sm = sb.SONNXModel(m)
    assert set(sm.get_params()) == {"E", "W"}
    ti = tensor.from_numpy(np.array([[0, 4]], np.int32))
    ty = tensor.from_numpy(np.array([1], np.int32))
    sm.compile([ti], is_train=True)
    sgd = opt.SGD(lr=0.5)
    with autograd.train_mode():
        loss = autograd.softmax_cross_entropy(sm.forward(ti)[0], ty)
        sgd(loss)
    changed = np.any(sm.get_params()["E"].to_numpy() != table, axis=1)
    assert_array_equal(changed, [True, False, False, False, True, False])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_scatter_elements_matches_onnxruntime(axis):
    idx = np.array([[1, -3], [0, 2]], np.int64) if axis == 0 else np.array([[2, -1]], np.int64)
    upd = f32(*idx.shape)
    check(N("ScatterElements", ["x", "i", "u"], ["y"], axis=axis), [("x", f32(3, 4)), ("u", upd)],
          inits=[("i", idx)])


@pytest.mark.parametrize("node, inputs, inits, match", [
    (N("Reshape", ["x", "s"], ["y"], name="p"), [("x", f32(3, 4))], [("s", i64(-1, -1))],
     "at most one -1"),
    (N("Reshape", ["x", "s"], ["y"], name="p"), [("x", f32(3, 4))], [("s", i64(-2, 6))],
     "no other negative"),
    (N("Pad", ["x", "q"], ["y"], name="p"), [("x", f32(3, 4))], [("q", i64(-5, 0, 0, 0))],
     "crop more than"),
    (N("Resize", ["x", "", "s"], ["y"], name="p"), [("x", f32(1, 1, 2, 2))],
     [("s", np.array([1, 1, 0, 2], np.float32))], "must be positive"),
    (N("Range", ["a", "b", "c"], ["y"], name="p"), [],
     [("a", np.array(0, np.int64)), ("b", np.array(5, np.int64)), ("c", np.array(0, np.int64))],
     "delta is 0"),
    (N("ScatterElements", ["x", "i", "u"], ["y"], name="p"), [("x", f32(3, 4))],
     [("i", i64(3).reshape(1, 1)), ("u", f32(1, 1))], "out of range"),
    (N("ScatterElements", ["x", "i", "u"], ["y"], name="p", reduction="add"), [("x", f32(3, 4))],
     [("i", i64(0).reshape(1, 1)), ("u", f32(1, 1))], "reduction"),
])
def test_bad_values_name_the_node(node, inputs, inits, match):
    """Values ONNX forbids give an error naming the node, never a result of some shape."""
    out = [helper.make_tensor_value_info("y", TensorProto.FLOAT if node.op_type != "Range"
                                         else TensorProto.INT64, ["d"])]
    g = helper.make_graph([node], "bad", [helper.make_tensor_value_info(
        n, TensorProto.FLOAT, a.shape) for n, a in inputs], out,
        [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)])
    with pytest.raises(ValueError, match=rf"node 'p' \({node.op_type}\): .*{match}"):
        sb.prepare(m).run([a for _, a in inputs])
