"""The CNN example models (mlp, cnn, alexnet, resnet, xceptionnet) and what they share.

Every model is a `minisinga.model.Model` with `input_size`, `dimension` (4 for NCHW
inputs, 2 for flat inputs), `num_classes`, `set_optimizer`, a module-level
`create_model(**kwargs)` and `train_one_batch(x, y, dist_option, spars)`; the last one
computes the softmax cross-entropy and hands the loss to `update` below.
"""

from __future__ import annotations

from minisinga import layer

DIST_OPTIONS = ("plain", "half", "partialUpdate", "sparseTopK", "sparseThreshold")

# dist_option -> (optimizer method, extra keyword arguments besides spars)
_METHODS = {
    "half": ("backward_and_update_half", {}),
    "partialUpdate": ("backward_and_partial_update", {}),
    "sparseTopK": ("backward_and_sparse_update", {"topK": True}),
    "sparseThreshold": ("backward_and_sparse_update", {"topK": False}),
}


def update(optimizer, loss, dist_option: str = "plain", spars=None) -> None:
    """Back-propagates `loss` and updates the parameters the way `dist_option` says:
    `plain` -> `optimizer(loss)`, `half` -> `backward_and_update_half(loss)`,
    `partialUpdate` -> `backward_and_partial_update(loss)`, `sparseTopK` /
    `sparseThreshold` -> `backward_and_sparse_update(loss, topK=True/False, spars=spars)`.
    The last four are `opt.DistOpt` methods."""
    if optimizer is None:
        raise RuntimeError("train_one_batch: no optimizer; call model.set_optimizer(opt) first")
    if dist_option == "plain":
        optimizer(loss)
        return
    if dist_option not in _METHODS:
        raise ValueError(f"unknown dist_option {dist_option!r}; expected one of "
                         f"{', '.join(DIST_OPTIONS)}")
    name, kwargs = _METHODS[dist_option]
    method = getattr(optimizer, name, None)
    if method is None:
        raise TypeError(f"dist_option {dist_option!r} needs an optimizer with {name}() "
                        f"(opt.DistOpt); {type(optimizer).__name__} has none. Use "
                        "dist_option='plain' for single-process training")
    if name == "backward_and_sparse_update":
        method(loss, spars=spars, **kwargs)
    else:
        method(loss)


class Sequential(layer.Layer):
    """Runs its sub-layers in order; they are registered as `0`, `1`, ... so their
    parameters get torchvision-style names (`layer1.0.conv1.W`)."""

    def __init__(self, *layers: layer.Layer):
        super().__init__()
        for i, sub in enumerate(layers):
            setattr(self, str(i), sub)

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i: int) -> layer.Layer:
        return list(self._layers.values())[i]

    def forward(self, x):
        for sub in self._layers.values():
            x = sub(x)
        return x


def conv_out(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    """Output side of a convolution or pooling window over `size` (floor mode)."""
    return (size + 2 * pad - kernel) // stride + 1
