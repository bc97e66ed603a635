"""Imports torchvision's architectures, exported by PyTorch's ONNX exporter, with sonnx and
compares the outputs with PyTorch's (random weights; needs torch and torchvision, so it is a
script, not part of the suite):

    python tests/data/check_torchvision_import.py [model names]

Prints each model's ONNX op types and the largest difference relative to the largest output.
"""

import io
import sys

import numpy as np
import onnx
import torch

from minisinga import sonnx

MODELS = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1",
          "shufflenet_v2_x0_5", "densenet121", "mnasnet0_5", "regnet_x_400mf", "googlenet",
          "convnext_tiny", "swin_t", "vit_b_16"]


def main(names):
    try:
        import torchvision
    except RuntimeError:  # a torchvision built for another torch: its C++ ops fail to register
        torch.library.register_fake = lambda *a, **k: (lambda f: f)
        import torchvision
    torch.manual_seed(0)
    for name in names:
        kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        net = getattr(torchvision.models, name)(weights=None, **kw).eval()
        with torch.no_grad():
            for p in net.parameters():
                if p.abs().sum() == 0:  # zero-initialised heads (ViT's): make them count
                    p.uniform_(-0.1, 0.1)
        side = 224 if name.startswith("vit") else 96
        x = torch.randn(2, 3, side, side)
        with torch.no_grad():
            want = net(x).numpy()
        f = io.BytesIO()
        torch.onnx.export(net, (x,), f, opset_version=17, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
        m = onnx.load_from_string(f.getvalue())
        got = sonnx.prepare(m).run([x.numpy()])[0]
        err = np.abs(got - want).max() / np.abs(want).max()
        ops = sorted({n.op_type for n in m.graph.node})
        print(f"{name:20s} relative error {err:.2e}  ops: {', '.join(ops)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or MODELS)
