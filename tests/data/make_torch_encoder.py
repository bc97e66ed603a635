"""Makes torch_encoder.onnx and torch_encoder.npz, the PyTorch-exported model that
tests/test_sonnx_torch.py imports (run once where torch is installed; the outputs are
committed, so the test needs no torch):

    python tests/data/make_torch_encoder.py

The model: conv, batch norm, ReLU, ceil-mode max pool, grouped strided conv, a transformer
encoder layer (attention, LayerNorm, GELU) and a linear head, exported by torch.onnx's
TorchScript exporter at opset 17 with a dynamic batch (so the graph computes shapes). The npz
holds inputs of batch 2 and 3, PyTorch's outputs, labels, and PyTorch's gradients of the mean
cross-entropy for batch 2 for every initializer that is a parameter as it is or transposed
(`grad/<initializer name>`).
"""

import io
import os

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.c2 = nn.Conv2d(8, 16, 3, stride=2, groups=2, bias=False)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True,
                                              activation="gelu")
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        h = self.c2(self.pool(torch.relu(self.bn(self.c1(x)))))
        t = self.enc(h.flatten(2).transpose(1, 2))  # (N, HW, 16)
        return self.fc(t.mean(1))


def main():
    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # no two parameters alike (the exporter would merge them)
        for p in net.parameters():
            p.uniform_(-0.4, 0.4)
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    net.eval()
    g = torch.Generator().manual_seed(1)
    x2, x3 = torch.randn(2, 3, 15, 15, generator=g), torch.randn(3, 3, 15, 15, generator=g)
    f = io.BytesIO()
    torch.onnx.export(net, (x2,), f, opset_version=17, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    model = onnx.load_from_string(f.getvalue())
    onnx.save(model, os.path.join(HERE, "torch_encoder.onnx"))

    labels = torch.tensor([1, 3])
    y2 = net(x2)
    nn.functional.cross_entropy(y2, labels).backward()
    data = {"x2": x2.numpy(), "y2": y2.detach().numpy(), "x3": x3.numpy(),
            "y3": net(x3).detach().numpy(), "labels": labels.numpy().astype(np.int32)}
    params = [(p.detach().numpy(), p.grad.numpy()) for p in net.parameters()]
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        for v, gr in params:
            if v.shape == a.shape and np.array_equal(v, a):
                data[f"grad/{init.name}"] = gr
            elif v.ndim == 2 and v.T.shape == a.shape and np.array_equal(v.T, a):
                data[f"grad/{init.name}"] = gr.T
    np.savez(os.path.join(HERE, "torch_encoder.npz"), **data)
    print(sorted({n.op_type for n in model.graph.node}), sorted(k for k in data))


if __name__ == "__main__":
    main()
