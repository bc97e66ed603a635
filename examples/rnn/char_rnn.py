"""Trains a character-level LSTM language model on a text file and samples from it.

    python char_rnn.py [TEXT] [--device auto|cpu|cuda] [--epochs N] [--hidden H]
        [--num-layers L] [--dropout P] [--seq-len S] [--batch-size B] [--lr LR]
        [--graph | --no-graph] [--max-steps N] [--sample-len N] [--temperature T] [--seed S]

TEXT defaults to the repository's README.md. The text is cut into `batch-size` parallel
streams; each step reads the next `seq-len` characters of every stream (one-hot), predicts the
character after each and takes an Adam step. The LSTM's final state is carried on to the next
step of the same streams (truncated back-propagation through time) and reset every epoch.
Prints `Epoch E: loss = L, Ts` per epoch (mean cross-entropy in nats per character, seconds)
and then `Sample: ...`, text generated one character at a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(HERE))
if os.path.isdir(os.path.join(_REPO, "minisinga")) and _REPO not in sys.path:
    sys.path.append(_REPO)  # a source checkout without an installed minisinga

from minisinga import autograd, device, layer, model, opt, tensor  # noqa: E402

DEFAULT_TEXT = os.path.join(_REPO, "README.md")


class UsageError(ValueError):
    """A bad command-line setting or input file: reported in one line, no traceback."""


# ---- data ----
class Corpus:
    """A text as int ids over its sorted set of characters."""

    def __init__(self, text: str):
        if not text:
            raise UsageError("the text is empty")
        self.chars = sorted(set(text))
        self.index = {ch: i for i, ch in enumerate(self.chars)}
        self.ids = np.array([self.index[ch] for ch in text], dtype=np.int32)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def streams(self, batch_size: int, seq_len: int):
        """(inputs, targets), each (batch_size, n) ids, targets one character ahead; n is a
        multiple of seq_len."""
        per_stream = (len(self.ids) - 1) // batch_size // seq_len * seq_len
        if per_stream == 0:
            raise UsageError(f"the text is too short: {len(self.ids)} characters for "
                             f"--batch-size {batch_size} x --seq-len {seq_len} (+1)")
        n = batch_size * per_stream
        return (self.ids[:n].reshape(batch_size, per_stream),
                self.ids[1:n + 1].reshape(batch_size, per_stream))


def load_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read the text file {path!r}: {e.strerror}") from None


# ---- model ----
class CharRNN(model.Model):
    """LSTM over one-hot characters (seq, batch, vocab), then a Linear layer per step that
    scores the next character."""

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.rnn = layer.LSTM(vocab_size, hidden_size, num_layers=num_layers, dropout=dropout)
        self.dense = layer.Linear(vocab_size)
        self.loss = layer.SoftMaxCrossEntropy()
        # The carried (h, c): plain attributes in a dict, so they are not checkpointed states.
        self.carry = {}

    def reset_states(self, batch_size: int, dev) -> None:
        """Zero (h, c) for `batch_size` streams (created here, outside any recorded graph)."""
        n = self.rnn.num_layers * self.rnn.num_directions
        shape = (batch_size, self.hidden_size) if n == 1 else (n, batch_size, self.hidden_size)
        for k in ("h", "c"):
            t = self.carry.get(k)
            if t is None or t.shape != shape or t.device != dev:
                self.carry[k] = tensor.zeros(shape, dev)
            else:
                t.set_value(0.0)

    def step(self, x):
        """Scores (seq * batch, vocab) for x (seq, batch, vocab), and the final (h, c)."""
        out, h, c = self.rnn(x, (self.carry["h"], self.carry["c"]))
        return self.dense(autograd.reshape(out, (-1, self.hidden_size))), h, c

    def forward(self, x):
        return self.step(x)[0]

    def train_one_batch(self, x, y):
        scores, h, c = self.step(x)
        loss = self.loss(scores, y)
        self.optimizer(loss)
        # After the backward pass (it reads the old state): the next batch goes on from here.
        self.carry["h"].copy_from(h)
        self.carry["c"].copy_from(c)
        return scores, loss


def sample(net: CharRNN, corpus: Corpus, length: int, temperature: float, dev,
           rng: np.random.Generator) -> str:
    """`length` characters drawn one at a time, starting after the text's first character."""
    net.eval()
    net.reset_states(1, dev)
    h, c = net.carry["h"], net.carry["c"]
    eye = np.eye(corpus.vocab_size, dtype=np.float32)
    cur = int(corpus.ids[0])
    out = [corpus.chars[cur]]
    for _ in range(length):
        x = tensor.from_numpy(eye[cur:cur + 1], dev)
        ys, h, c = net.rnn([x], (h, c))
        logits = net.dense(ys[0]).to_numpy()[0].astype(np.float64) / temperature
        p = np.exp(logits - logits.max())
        cur = int(rng.choice(corpus.vocab_size, p=p / p.sum()))
        out.append(corpus.chars[cur])
    return "".join(out)


def get_device(kind: str):
    if kind == "auto":
        kind = "cuda" if device.cuda_available() else "cpu"
    if kind == "cpu":
        return device.get_default_device()
    if not device.cuda_available():
        raise UsageError("--device cuda: no GPU is visible or minisinga was built without "
                         "CUDA; use --device cpu (or auto)")
    return device.create_cuda_gpu_on(0)


# ---- training ----
def run(args) -> None:
    for name in ("epochs", "hidden", "seq_len", "batch_size", "num_layers"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")
    if args.temperature <= 0:
        raise UsageError("--temperature must be > 0")
    if not 0.0 <= args.dropout < 1.0:
        raise UsageError("--dropout must be in [0, 1)")
    dev = get_device(args.device)
    dev.SetRandSeed(args.seed)
    rng = np.random.default_rng(args.seed)
    corpus = Corpus(load_text(args.text))
    xs, ys = corpus.streams(args.batch_size, args.seq_len)
    steps = xs.shape[1] // args.seq_len
    if args.max_steps is not None:
        steps = min(steps, args.max_steps)
    print(f"text: {args.text} ({len(corpus.ids)} characters), vocabulary: "
          f"{corpus.vocab_size} characters, {steps} steps of {args.batch_size} x "
          f"{args.seq_len} per epoch, device {dev.name}, graph {args.graph}", flush=True)

    net = CharRNN(corpus.vocab_size, args.hidden, args.num_layers, args.dropout)
    net.set_optimizer(opt.Adam(args.lr))
    eye = np.eye(corpus.vocab_size, dtype=np.float32)
    tx = tensor.Tensor((args.seq_len, args.batch_size, corpus.vocab_size), dev)
    ty = tensor.Tensor((args.seq_len * args.batch_size,), dev, dtype=tensor.int32)
    net.reset_states(args.batch_size, dev)
    net.compile([tx], is_train=True, use_graph=args.graph, sequential=False)
    for epoch in range(args.epochs):
        net.train()
        net.reset_states(args.batch_size, dev)
        start, total = time.perf_counter(), 0.0
        for i in range(steps):
            cols = slice(i * args.seq_len, (i + 1) * args.seq_len)
            tx.copy_from_numpy(eye[xs[:, cols].T])        # (seq, batch, vocab)
            ty.copy_from_numpy(ys[:, cols].T.reshape(-1))  # step-major, as the scores
            _, loss = net(tx, ty)
            total += loss.item()
        print(f"Epoch {epoch}: loss = {total / steps:.4f}, "
              f"{time.perf_counter() - start:.3f}s", flush=True)
    if args.sample_len > 0:
        text = sample(net, corpus, args.sample_len, args.temperature, dev, rng)
        print("Sample: " + text, flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Character-level LSTM language model.")
    p.add_argument("text", nargs="?", default=DEFAULT_TEXT,
                   help="a text file to learn (default: the repository's README.md)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train: a GPU when there is one (auto), cpu or cuda")
    p.add_argument("--epochs", type=int, default=30, help="passes over the text")
    p.add_argument("--hidden", type=int, default=128, help="LSTM hidden size")
    p.add_argument("--num-layers", type=int, default=1, help="stacked LSTM layers")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="dropout between stacked layers, in [0, 1)")
    p.add_argument("--seq-len", type=int, default=32, help="characters per step and stream")
    p.add_argument("--batch-size", type=int, default=16, help="parallel streams")
    p.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    p.add_argument("--graph", action=argparse.BooleanOptionalAction, default=True,
                   help="record the training step once and replay it (default) or run eagerly")
    p.add_argument("--max-steps", type=int, default=None, help="at most this many steps "
                   "per epoch (for quick checks)")
    p.add_argument("--sample-len", type=int, default=200, help="characters to sample at the "
                   "end (0: none)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature (lower: more conservative)")
    p.add_argument("--seed", type=int, default=0, help="seed of the device RNG and sampling")
    args = p.parse_args(argv)
    try:
        run(args)
    except UsageError as e:
        p.error(str(e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
