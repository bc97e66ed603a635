"""Train an examples/cnn model, export it to ONNX, import it back and fine-tune it.

    python examples/onnx/onnx_cnn.py cnn mnist --data-dir /usr/share/datasets/fashion-mnist

1. trains the model (`cnn` or `mlp`) for --steps SGD steps (recorded graph) and evaluates it;
2. exports it with sonnx.export to --out (ONNX, opset 13, weights included, any batch size);
3. where onnxruntime is installed, runs the file there on 10 validation images and reports the
   largest difference from minisinga's logits;
4. imports the file as a SONNXModel (its weights become trainable parameters), checks that it
   evaluates as the original, fine-tunes it for --steps more steps and evaluates again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cnn"))

from train_cnn import accuracy, create_model, get_device, load_data  # noqa: E402

from minisinga import autograd, opt, sonnx, tensor  # noqa: E402


class FineTune(sonnx.SONNXModel):
    """The imported graph, trained with softmax cross-entropy."""

    def forward(self, *x):
        return super().forward(*x)[0]

    def train_one_batch(self, x, y):
        out = self.forward(x)
        loss = autograd.softmax_cross_entropy(out, y)
        self.optimizer(loss)
        return out, loss


def train(net, tx, ty, xs, ys, steps: int, batch: int, rng) -> float:
    """`steps` steps on random batches; the mean loss of the last 20."""
    net.train()
    losses = []
    for _ in range(steps):
        pick = rng.integers(0, xs.shape[0], batch)
        tx.copy_from_numpy(xs[pick])
        ty.copy_from_numpy(ys[pick])
        _, loss = net(tx, ty)
        losses.append(loss.item())
    return float(np.mean(losses[-20:]))


def evaluate(net, tx, xs, ys, batch: int) -> float:
    net.eval()
    correct = 0
    n = xs.shape[0] // batch * batch
    for i in range(0, n, batch):
        tx.copy_from_numpy(xs[i:i + batch])
        correct += accuracy(net(tx).to_numpy(), ys[i:i + batch])
    return correct / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=["cnn", "mlp"])
    p.add_argument("data", choices=["mnist", "cifar10", "cifar100"])
    p.add_argument("--data-dir", default=None)
    p.add_argument("--steps", type=int, default=300, help="training steps, then as many to "
                   "fine-tune the imported model")
    p.add_argument("-b", "--batch-size", type=int, default=64)
    p.add_argument("-l", "--learning-rate", type=float, default=0.05)
    p.add_argument("--out", default="model.onnx", help="where the ONNX file goes")
    p.add_argument("--eval-size", type=int, default=2000, help="validation images used")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1:
        p.error("--steps and --batch-size must be positive")

    dev = get_device(args.device)
    dev.SetRandSeed(0)
    rng = np.random.default_rng(0)
    train_x, train_y, val_x, val_y = load_data(args.data, args.data_dir)
    val_x, val_y = val_x[:args.eval_size], val_y[:args.eval_size]
    classes = int(train_y.max()) + 1
    net = create_model(args.model, train_x.shape[1], classes, int(np.prod(train_x.shape[1:])))
    if net.dimension == 2:
        train_x = train_x.reshape(train_x.shape[0], -1)
        val_x = val_x.reshape(val_x.shape[0], -1)
    b = args.batch_size
    tx = tensor.Tensor((b,) + train_x.shape[1:], dev, requires_grad=False)
    ty = tensor.Tensor((b,), dev, dtype=tensor.int32, requires_grad=False)

    net.set_optimizer(opt.SGD(lr=args.learning_rate, momentum=0.9))
    net.compile([tx], is_train=True, use_graph=True)
    t0 = time.time()
    loss = train(net, tx, ty, train_x, train_y, args.steps, b, rng)
    acc = evaluate(net, tx, val_x, val_y, b)
    print(f"trained {args.model}: {args.steps} steps in {time.time() - t0:.1f} s, "
          f"loss {loss:.4f}, validation accuracy {acc:.4f}")

    sonnx.export(net, [tx], path=args.out, input_names=["images"], output_names=["logits"],
                 dynamic_batch=True)
    print(f"exported {args.out} ({os.path.getsize(args.out)} bytes, any batch size)")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: the file was not checked there")
    else:
        s = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
        few = val_x[:10].astype(np.float32)  # another batch size than the training one
        got = s.run(None, {"images": few})[0]
        logits = net.forward(tensor.from_numpy(few, dev)).to_numpy()
        print(f"onnxruntime: largest logit difference {np.abs(got - logits).max():.3g} "
              f"(batch {len(few)})")

    imported = FineTune(sonnx.load(args.out))
    imported.set_optimizer(opt.SGD(lr=args.learning_rate, momentum=0.9))
    imported.compile([tx], is_train=True, use_graph=True)
    acc_imported = evaluate(imported, tx, val_x, val_y, b)
    print(f"imported: {len(imported.get_params())} parameters, validation accuracy "
          f"{acc_imported:.4f}")
    loss = train(imported, tx, ty, train_x, train_y, args.steps, b, rng)
    print(f"fine-tuned the imported model: loss {loss:.4f}, validation accuracy "
          f"{evaluate(imported, tx, val_x, val_y, b):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
