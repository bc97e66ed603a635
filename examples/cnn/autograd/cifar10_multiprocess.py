"""ResNet on CIFAR-10 (resnet_cifar10.py) trained by N processes on one host with partial
updates: each rank updates locally and one partition of the parameters is averaged per step
(all of them at the end of each epoch).

    python cifar10_multiprocess.py N [--depth 50] [--image-size 224] [--max-epoch 5]
                                     [--max-steps S] [--data-dir DIR] [--device auto|cpu|cuda]
"""

import sys

from mnist_multiprocess import build_parser, launch, train_kwargs
from resnet_cifar10 import train_cifar10

if __name__ == "__main__":
    ap = build_parser(" ".join(__doc__.split("\n\n")[0].split()))
    ap.set_defaults(max_epoch=5, batch_size=32)
    ap.add_argument("--depth", default=50, type=int, choices=[18, 34, 50, 101, 152])
    ap.add_argument("--image-size", default=224, type=int)
    a = ap.parse_args()
    kw = dict(train_kwargs(a), partial_update=True, depth=a.depth, image_size=a.image_size)
    sys.exit(launch(train_cifar10, a.world_size, (), kw))
