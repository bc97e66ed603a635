"""Devices: where tensors live and kernels run (SINGA's device module)."""

from __future__ import annotations

import contextlib
import weakref

from . import _core

Device = _core.Device


def _check_id(device_id: int) -> int:
    if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id < 0:
        raise ValueError(f"device id must be a non-negative int, got {device_id!r}")
    return device_id


def create_cpu_device() -> Device:
    """Creates a new CPU device with its own memory pool, graph and RNG. Once nothing holds
    it (no tensor, no handle), the memory it cached goes back to the system."""
    dev = _core.create_cpu_device()
    _CACHE_GUARDS[dev] = _core._cache_guard(dev)
    return dev


_CACHE_GUARDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def get_default_device() -> Device:
    """The process-wide default CPU device (the one tensors use when none is given)."""
    return _core.default_device()


def cuda_available() -> bool:
    """True when minisinga was built with CUDA and at least one GPU is visible."""
    return _core.built_with_cuda() and _core.cuda_device_count() > 0


def get_num_gpus() -> int:
    """Number of visible GPUs (0 without a CUDA build)."""
    return _core.cuda_device_count()


def create_cuda_gpu_on(device_id: int) -> Device:
    """The CUDA device for GPU `device_id`; raises RuntimeError without CUDA or that GPU."""
    return _core.cuda_device(_check_id(device_id))


def create_cuda_gpu() -> Device:
    """The CUDA device for GPU 0."""
    return create_cuda_gpu_on(0)


def create_cuda_gpus(num: int) -> list:
    """CUDA devices for GPUs 0..num-1."""
    return [create_cuda_gpu_on(i) for i in range(num)]


def create_cuda_gpus_on(device_ids) -> list:
    """CUDA devices for the listed GPU ids."""
    return [create_cuda_gpu_on(i) for i in device_ids]


def get_gpu_ids() -> list:
    """The ids of the visible GPUs (empty without a CUDA build)."""
    return list(range(get_num_gpus()))


def get_gpu_mem_size(device_id: int) -> tuple:
    """(free, total) bytes of GPU `device_id`'s memory (SINGA's); RuntimeError without CUDA
    or that GPU."""
    info = _core.cuda_device_info(_check_id(device_id))
    return info["free_bytes"], info["total_bytes"]


def device_query(device_id: int, verbose: bool = False) -> str:
    """A line describing GPU `device_id`: name, compute capability, multiprocessors and memory
    (SINGA's); also printed when `verbose`."""
    i = _core.cuda_device_info(_check_id(device_id))
    gib = 1 << 30
    text = (f"GPU {device_id}: {i['name']}, compute capability {i['major']}.{i['minor']}, "
            f"{i['multiprocessors']} multiprocessors, {i['total_bytes'] / gib:.1f} GiB memory "
            f"({i['free_bytes'] / gib:.1f} GiB free)")
    if verbose:
        print(text)
    return text


def set_conv_autotune(on: bool) -> bool:
    """Convolution autotuning, as `torch.backends.cudnn.benchmark`: with it on, the first
    convolution (forward, data or weight gradient) of each shape and dtype on each device
    times every plan minisinga has for it (Winograd, strided-batched GEMMs, im2col in chunks
    or bands) and that shape keeps the fastest. Off by default (`MINISINGA_CONV_AUTOTUNE=1`
    turns it on): the choice is then the same on every run. Returns the previous setting."""
    return _core.set_conv_autotune(bool(on))


def conv_autotune_results(dev: Device) -> list:
    """What the autotuner chose on `dev`: a dict per convolution shape and pass, with `key`,
    `chosen` (the plan kept) and `candidates` ((plan, seconds) pairs, best time of each)."""
    return _core.conv_autotune_results(dev)


def _print_time_profiling(self) -> None:
    report = self.time_profiling_report()
    if report:
        print(report, end="", flush=True)


# SINGA's CamelCase methods come from the core; add PrintTimeProfiling and snake_case aliases.
Device.PrintTimeProfiling = _print_time_profiling
for _camel, _snake in [
    ("EnableGraph", "enable_graph"),
    ("RunGraph", "run_graph"),
    ("ResetGraph", "reset_graph"),
    ("Sync", "sync"),
    ("SetRandSeed", "set_rand_seed"),
    ("SetVerbosity", "set_verbosity"),
    ("SetSkipIteration", "set_skip_iteration"),
    ("PrintTimeProfiling", "print_time_profiling"),
]:
    setattr(Device, _snake, getattr(Device, _camel))


@contextlib.contextmanager
def eager(dev: Device):
    """Runs ops at once on `dev` even while it records a graph: for state that must be
    created once (optimizer buffers, counters), not re-created at every replay."""
    was = dev.graph_enabled()
    if was:
        dev.EnableGraph(False)
    try:
        yield
    finally:
        if was:
            dev.EnableGraph(True)
