"""ONNX export and import, with SINGA's `sonnx` names.

Export: `to_onnx(inputs, y)` turns the operators that computed `y` from `inputs` (a forward
run with `autograd.training = True`, SINGA's way) into an ONNX model; `export(model, inputs)`
traces one inference forward of a Model, Layer or function instead (no training switch, batch
norm with its running statistics, dropout off). Parameters become initializers.

Import: `prepare(onnx_model, device)` returns a `SingaRep` whose `run(inputs)` computes the
graph with minisinga's operators; `SONNXModel(onnx_model)` is a `model.Model` built from an
ONNX graph, whose weights are parameters (fine-tuning, `compile(use_graph=True)`,
`save_states` work as for any Model).

Needs the `onnx` package (`pip install onnx`); `import minisinga` does not.
"""

try:
    import onnx as _onnx
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("minisinga.sonnx needs the onnx package: pip install onnx") from e

from .backend import SingaBackend, SingaRep, SONNXModel, get_op, prepare, run_node  # noqa: F401
from .frontend import OPSET, SingaFrontend, export, to_onnx  # noqa: F401

save = _onnx.save
load = _onnx.load

__all__ = ["to_onnx", "export", "prepare", "run_node", "get_op", "SingaRep", "SONNXModel",
           "SingaBackend", "SingaFrontend", "save", "load", "OPSET"]
