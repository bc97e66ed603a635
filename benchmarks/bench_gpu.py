"""GPU training throughput: minisinga eager, minisinga graph (replays captured as one CUDA
graph) and PyTorch eager on the same GPU, float32, one full training step each (forward,
backward, SGD with momentum 0.9 and weight decay 1e-5), in images per second.

    python benchmarks/bench_gpu.py [--models resnet50,cnn,mlp] [--iters 20] [--skip 5]
        [--repeat 1] [--tf32] [--float16] [--autotune] [--fused-residual] [--out FILE]
        [--profile-torch STEPS] [--profile-kernels STEPS]

Models: ResNet-50 at batch 32 (3x224x224, 1000 classes; torchvision's resnet50 for PyTorch),
the examples' LeNet-style CNN and MLP at batch 64 (1x28x28 / 784 features, 10 classes; the
same layers in torch.nn). TF32 is off on both sides unless --tf32. PyTorch runs with cuDNN's
benchmark mode (convolution algorithms timed per shape); --autotune turns on minisinga's
counterpart (minisinga.device.set_conv_autotune), which is off by default. With --repeat N
the three are measured N times, interleaved, and each column is the median.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.append(ROOT)  # a checkout without an installed minisinga
sys.path.insert(0, os.path.join(ROOT, "examples", "cnn"))

from minisinga import device, opt, tensor  # noqa: E402

# name: (batch, input shape without batch, classes)
MODELS = {
    "resnet50": (32, (3, 224, 224), 1000),
    "cnn": (64, (1, 28, 28), 10),
    "mlp": (64, (784,), 10),
}


def minisinga_model(name: str, fused_residual: bool = False):
    if name == "resnet50":
        from model import resnet

        return resnet.resnet50(num_channels=3, num_classes=1000, input_size=224,
                               fused_residual=fused_residual)
    if name == "cnn":
        from model import cnn

        return cnn.create_model(num_classes=10, num_channels=1, input_size=28)
    from model import mlp

    return mlp.create_model(data_size=784, perceptron_size=100, num_classes=10)


def profile_kernels(step, steps: int, sync) -> str:
    """Every CUDA kernel that `steps` calls of step() launch, with its device time, as CUPTI
    records them through PyTorch's profiler: minisinga's own kernels and the cuBLAS kernels its
    GEMMs chose, which minisinga's per-op profile (--verbosity 2) cannot tell apart."""
    from torch.profiler import ProfilerActivity, profile

    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        sync()
    # Kernel names are long templates: a narrower column cuts them to the namespace.
    return prof.key_averages().table(sort_by="device_time_total", row_limit=30,
                                     max_name_column_width=160)


def time_minisinga(name: str, graph: bool, iters: int, skip: int, tf32: bool,
                   half: bool = False, profile_steps: int = 0, fused: bool = False) -> dict:
    batch, shape, classes = MODELS[name]
    dev = device.create_cuda_gpu_on(0)
    dev.set_allow_tf32(tf32)
    dev.SetRandSeed(0)
    rng = np.random.default_rng(0)
    dtype = tensor.float16 if half else tensor.float32  # as train_cnn.py -p float16
    tx = tensor.Tensor((batch,) + shape, dev, dtype=dtype, requires_grad=False)
    ty = tensor.Tensor((batch,), dev, dtype=tensor.int32, requires_grad=False)
    x = rng.standard_normal((batch,) + shape, dtype=np.float32)
    tx.copy_from_numpy(x.astype(np.float16) if half else x)
    ty.copy_from_numpy(rng.integers(0, classes, batch, dtype=np.int32))
    m = minisinga_model(name, fused)
    m.set_optimizer(opt.SGD(lr=0.05, momentum=0.9, weight_decay=1e-5, dtype=dtype))
    m.compile([tx], is_train=True, use_graph=graph)
    dev.reset_peak()
    launches0 = dev.cuda_graph_launches
    for _ in range(skip):
        m(tx, ty)
    dev.Sync()
    start = time.perf_counter()
    for _ in range(iters):
        _, loss = m(tx, ty)
    dev.Sync()
    seconds = time.perf_counter() - start
    loss_value = float(loss.to_numpy().reshape(-1)[0])
    info = {
        "img_s": iters * batch / seconds,
        "loss": loss_value,
        "launches": dev.cuda_graph_launches - launches0,
        "failure": dev.cuda_graph_failure,
        "peak_mb": dev.memory_stats()["peak"] / 2**20,
    }
    if profile_steps:
        try:
            info["profile"] = profile_kernels(lambda: m(tx, ty), profile_steps, dev.Sync)
        except Exception as e:  # the profiler's failure is reported, not the benchmark's
            info["profile"] = f"kernel profile failed: {type(e).__name__}: {e}"
    m.graph(False)  # drops the recorded graph and its memory
    dev.set_allow_tf32(False)
    return info


def torch_model(name: str):
    from torch import nn

    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(num_classes=1000)
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 20, 5),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(20, 50, 5),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Flatten(),
            nn.Linear(800, 500),
            nn.ReLU(),
            nn.Linear(500, 10),
        )
    return nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))


def time_torch(name: str, iters: int, skip: int, tf32: bool, half: bool = False) -> dict:
    import torch

    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    batch, shape, classes = MODELS[name]
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    dtype = torch.float16 if half else torch.float32  # float16 parameters, as ours
    m = torch_model(name).cuda().to(dtype).train()
    sgd = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-5)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn((batch,) + shape, device="cuda", dtype=dtype)
    y = torch.randint(0, classes, (batch,), device="cuda")

    def step():
        sgd.zero_grad(set_to_none=True)
        loss = loss_fn(m(x), y)
        loss.backward()
        sgd.step()
        return loss

    for _ in range(skip):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        loss = step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {
        "img_s": iters * batch / seconds,
        "loss": loss.item(),
        "peak_mb": torch.cuda.max_memory_allocated() / 2**20,
        "step": step,
    }


def profile_torch(step, steps: int) -> str:
    """PyTorch's own per-op CUDA times over `steps` training steps (what cuDNN spends on
    each kind of convolution, for comparison with minisinga's --verbosity 2 profile)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="device_time_total", row_limit=20,
                                     max_name_column_width=100)


def torch_with_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--models", default="resnet50,cnn,mlp")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--skip", type=int, default=5)
    p.add_argument("--repeat", type=int, default=1,
                   help="measure eager, graph and PyTorch this many times, interleaved; the "
                        "columns are the medians")
    p.add_argument("--small-iters", type=int, default=200,
                   help="timed steps for the CNN and MLP (a step takes well under 1 ms)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 GEMMs on both sides")
    p.add_argument("--float16", action="store_true",
                   help="float16 inputs and parameters on both sides (train_cnn.py -p float16; "
                        "PyTorch: the model in half precision)")
    p.add_argument("--autotune", action="store_true",
                   help="minisinga's convolution autotuning on (PyTorch's cuDNN benchmark "
                        "mode is always on)")
    p.add_argument("--fused-residual", action="store_true",
                   help="minisinga's ResNet-50 blocks end in one fused batch norm + residual "
                        "add + ReLU op instead of SPEC-cnn's layer.Add joins (same numbers)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--profile-torch", type=int, default=0, metavar="STEPS",
                   help="print PyTorch's per-op CUDA times over STEPS steps of each model")
    p.add_argument("--profile-kernels", type=int, default=0, metavar="STEPS",
                   help="print the CUDA kernels of STEPS minisinga eager steps of each model, "
                        "with their device times (CUPTI, through PyTorch's profiler)")
    p.add_argument("--out", help="also append the table to this file, row by row")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error(f"--repeat must be >= 1, got {args.repeat}")
    if not device.cuda_available():
        print("bench_gpu: no GPU visible (or minisinga built without CUDA)", file=sys.stderr)
        return 2
    device.set_conv_autotune(args.autotune)
    use_torch = not args.no_torch and torch_with_cuda()
    if not args.no_torch and not use_torch:
        print("bench_gpu: no PyTorch with CUDA here; its column is left out", file=sys.stderr)
    if args.profile_kernels and not torch_with_cuda():
        print("bench_gpu: --profile-kernels needs PyTorch with CUDA (its profiler)",
              file=sys.stderr)
        return 2
    def emit(line: str) -> None:  # printed and written at once: a later failure loses nothing
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(line + "\n")

    emit(f"{'model':10s}{'batch':>6s}{'eager':>10s}{'graph':>10s}{'torch':>10s}"
         f"{'eager/torch':>13s}{'graph/torch':>13s}  (images/s"
         f"{f', median of {args.repeat}' if args.repeat > 1 else ''}; torch = PyTorch eager, "
         f"cuDNN benchmark mode, no CUDA graphs; {'float16' if args.float16 else 'float32'}, "
         f"TF32 {'on' if args.tf32 else 'off'}{', autotuned' if args.autotune else ''}"
         f"{', fused residual' if args.fused_residual else ''})")
    for name in args.models.split(","):
        batch = MODELS[name][0]
        iters = args.iters if name == "resnet50" else max(args.iters, args.small_iters)
        runs: dict = {"eager": [], "graph": [], "torch": []}
        for r in range(args.repeat):
            runs["eager"].append(time_minisinga(
                name, False, iters, args.skip, args.tf32, args.float16,
                args.profile_kernels if r == 0 else 0, args.fused_residual))
            runs["graph"].append(time_minisinga(name, True, iters, args.skip, args.tf32,
                                                args.float16, fused=args.fused_residual))
            if use_torch:
                try:
                    runs["torch"].append(time_torch(name, iters, args.skip, args.tf32,
                                                    args.float16))
                except Exception as e:  # minisinga's numbers are still reported
                    print(f"bench_gpu: PyTorch failed on {name}: {type(e).__name__}: {e}",
                          file=sys.stderr, flush=True)
                    use_torch = False
        img = {k: float(np.median([v["img_s"] for v in vs])) if vs else float("nan")
               for k, vs in runs.items()}
        eager, graph = runs["eager"][0], runs["graph"][-1]
        torch = runs["torch"][0] if runs["torch"] else None
        note = (
            f"replays as one CUDA graph: {graph['launches']} of {iters + args.skip} steps "
            "(the first 2 record and warm up)"
            + (f" (capture failed: {graph['failure']})" if graph["failure"] else "")
            + f"; peak MB eager {eager['peak_mb']:.0f} graph {graph['peak_mb']:.0f}"
            + (f" torch {torch['peak_mb']:.0f}" if torch else "")
            + ("; runs " + ", ".join(f"{k} " + "/".join(f"{v['img_s']:.0f}" for v in vs)
                                     for k, vs in runs.items() if vs)
               if args.repeat > 1 else "")
        )
        emit(f"{name:10s}{batch:6d}{img['eager']:10.1f}{img['graph']:10.1f}{img['torch']:10.1f}"
             f"{img['eager'] / img['torch']:13.2f}{img['graph'] / img['torch']:13.2f}  {note}")
        if args.profile_kernels:
            print(f"minisinga's CUDA kernels, {name}, {args.profile_kernels} eager steps:",
                  flush=True)
            print(eager["profile"], flush=True)
        if torch and args.profile_torch:
            print(f"PyTorch profile, {name}, {args.profile_torch} steps:", flush=True)
            print(profile_torch(torch["step"], args.profile_torch), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
