"""ONNX import speed, in one run: inference throughput of a model exported with sonnx.export
and run (a) natively in minisinga, (b) imported with sonnx.prepare (the SingaRep, Tensors in
and out) and (c) in onnxruntime (CPU) when installed; and a training step of the imported
SONNXModel against the native model's, eager and with a recorded graph.

    python benchmarks/bench_onnx.py [--models mlp,cnn,resnet18] [--iters 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(HERE, ".."))  # a checkout without an installed minisinga
sys.path.insert(0, os.path.join(HERE, "..", "examples", "cnn"))
sys.path.insert(0, os.path.join(HERE, "..", "examples", "onnx"))

from onnx_cnn import FineTune  # noqa: E402

from minisinga import device, opt, sonnx, tensor  # noqa: E402

MODELS = {  # name: (batch, input shape without the batch)
    "mlp": (64, (784,)),
    "cnn": (64, (1, 28, 28)),
    "resnet18": (8, (3, 224, 224)),
}


def make(name):
    if name == "mlp":
        from model import mlp

        return mlp.create_model(data_size=784, num_classes=10)
    if name == "cnn":
        from model import cnn

        return cnn.create_model(num_channels=1, num_classes=10)
    if name == "resnet18":
        from model import resnet

        return resnet.resnet18(num_channels=3, num_classes=10)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")


def rate(fn, iters: int, batch: int, sync) -> float:
    """Images per second of fn() after two warm-up calls."""
    for _ in range(2):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return iters * batch / (time.perf_counter() - t0)


def bench(name: str, iters: int, dev) -> dict:
    batch, shape = MODELS[name]
    r = np.random.default_rng(0)
    x = r.standard_normal((batch,) + shape).astype(np.float32)
    y = r.integers(0, 10, batch).astype(np.int32)
    tx, ty = tensor.from_numpy(x, dev), tensor.from_numpy(y, dev)
    net = make(name)
    net.compile([tx], is_train=False, use_graph=False)
    net.eval()
    om = sonnx.export(net, [tx])
    rep = sonnx.prepare(om, dev)
    sync = dev.Sync
    out = {"native": rate(lambda: net.forward(tx), iters, batch, sync),
           "imported": rate(lambda: rep.run([tx]), iters, batch, sync)}
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        s = ort.InferenceSession(om.SerializeToString(), providers=["CPUExecutionProvider"])
        feed = {s.get_inputs()[0].name: x}
        out["onnxruntime"] = rate(lambda: s.run(None, feed), iters, batch, lambda: None)
    for graph in (False, True):
        for kind in ("native", "imported"):
            m = make(name) if kind == "native" else FineTune(om)
            m.set_optimizer(opt.SGD(lr=0.01, momentum=0.9))
            m.compile([tx], is_train=True, use_graph=graph)
            out[f"train {kind}{' graph' if graph else ''}"] = rate(
                lambda m=m: m(tx, ty), iters, batch, sync)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--models", default="mlp,cnn,resnet18")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = p.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    bad = [n for n in names if n not in MODELS]
    if bad or args.iters < 1:
        p.error(f"unknown model(s) {bad}; expected {', '.join(MODELS)}" if bad else
                "--iters must be >= 1")
    dev = device.create_cuda_gpu_on(0) if args.device == "cuda" else \
        device.get_default_device()
    print(f"device {args.device}, {args.iters} iterations; images/s (ratio to native)")
    for name in names:
        res = bench(name, args.iters, dev)
        print(f"{name} (batch {MODELS[name][0]}):")
        for k, v in res.items():
            base = res["train native" + (" graph" if "graph" in k else "")] \
                if k.startswith("train") else res["native"]
            print(f"  {k:<24} {v:10.1f}   {v / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
