#!/usr/bin/env bash
# One GPU check of minisinga's CUDA backend, for a machine with an NVIDIA GPU and no network
# (the device tool's nvidia-h100-x1 / nvidia-h200: Python 3.12 with torch, torchvision, cupy,
# pybind11, numpy, pytest(-xdist), nvcc and the nvidia-cublas wheel already there). It builds
# for sm_90, then, most telling first: the headline table (benchmarks/bench_gpu.py: minisinga
# eager and graph against PyTorch eager, ResNet-50 b32, CNN and MLP b64, medians of 3
# interleaved runs, printed as soon as measured), the CUDA tests (every `cuda` case of the
# suite, then test_dist_nccl), train_cnn.py on real Fashion-MNIST, the autotuned and
# fused-residual ResNet-50 rows, every ResNet-50 conv shape against cuDNN with each autotuned
# plan's time, the examples' benchmark.py (graph, eager, A/B rows of the plan's choices), TF32
# and float16 tables, per-op ResNet-50 profiles of minisinga and PyTorch, and writes
# $OUT/report.txt plus the logs (CI runs the CPU suite: not here). Every step has a timeout
# cut to what is left of an 8-minute budget (CHECK_BUDGET_S, default 450), so the later ones
# may be skipped. Give the device tool a timeout_s about 60 s above the budget.
#
# scipy-openblas32 is not installed there: carry it as a wheel in .whl/ (git-ignored). Once,
# on a machine with network access, in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 -d .whl scipy-openblas32==0.3.34.481.3
# then, with the device tool (carry: [".whl"]):   bash tests/gpu/check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/minisinga-gpu-check}"
mkdir -p "$OUT"
REPORT="$OUT/report.txt"
: >"$REPORT"
START=$(date +%s)
DEADLINE=$((START + ${CHECK_BUDGET_S:-450}))
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

say() { echo "$*" | tee -a "$REPORT"; }

# run NAME LOG LIMIT CMD...: CMD with a timeout of min(LIMIT, time left) seconds, output
# appended to $OUT/LOG.log (few files: at most 8 come back from the device tool); its status
# is returned and reported.
run() {
  local name=$1 log=$2 limit=$3
  shift 3
  local left=$((DEADLINE - $(date +%s) - 5))
  if ((left < 10)); then
    say "[$name] skipped: the time budget is spent"
    return 124
  fi
  ((limit > left)) && limit=$left
  local t0
  t0=$(date +%s)
  echo "\$ $*" >>"$OUT/$log.log"
  timeout -k 5 "$limit" "$@" >>"$OUT/$log.log" 2>&1
  local rc=$?
  say "[$name] exit $rc after $(($(date +%s) - t0))s (limit ${limit}s): $*"
  return $rc
}

# The sources' fingerprint, not git's HEAD: the copy of the tree may carry a stale .git.
# The same command gives it for a checkout elsewhere.
FP=$(find csrc minisinga setup.py -type f \( -name '*.cc' -o -name '*.cu' -o -name '*.h' \
  -o -name '*.cuh' -o -name '*.py' \) | LC_ALL=C sort | xargs cat | sha1sum | cut -c1-12)
say "minisinga GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), sources $FP"
say "GPU: $(timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | head -1)"
say "nvcc: $(nvcc --version 2>&1 | tail -1); python: $($PY --version 2>&1); kernel: $(uname -r)"
say "torch: $(timeout 60 "$PY" -c "import torch; print(torch.__version__, 'cuDNN', torch.backends.cudnn.version(), 'cuda', torch.cuda.is_available())" 2>&1 | tail -1)"

# Real Fashion-MNIST for the training checks: carry it as .data/fashion-mnist (git-ignored;
# `cp -r /usr/share/datasets/fashion-mnist .data/` on a machine with dataset-fashion-mnist).
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -e "$FMNIST/train-images-idx3-ubyte.gz" ] && [ -d .data/fashion-mnist ]; then
  mkdir -p "$(dirname "$FMNIST")" && cp -r .data/fashion-mnist "$FMNIST"
fi
# Open MPI refuses root unless told (the device machine runs commands as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

if ! "$PY" -c "import scipy_openblas32" 2>/dev/null && ! ls .whl/*.whl >/dev/null 2>&1; then
  say "no scipy-openblas32 and no .whl/ carried: the build cannot work (see this file's header)"
  exit 1
fi
if ls .whl/*.whl >/dev/null 2>&1; then
  run wheels build 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
else
  say "no .whl/ folder: scipy-openblas32 must already be importable"
fi

if [ "${CHECK_PREBUILT:-0}" = 1 ] && ls minisinga/_core*.so >/dev/null 2>&1; then
  say "using the carried build $(ls minisinga/_core*.so)"
elif ! run build build 240 env MINISINGA_CUDA=1 MINISINGA_CUDA_ARCHS=90 "$PY" setup.py -q build_ext --inplace --force; then
  say "--- build failed; end of build.log:"
  tail -40 "$OUT/build.log" >>"$REPORT"
  exit 1
fi
# The build comes back too, for a rerun that carries it (CHECK_PREBUILT=1 skips the build).
cp minisinga/_core*.so "$OUT/" 2>/dev/null
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
say "_core links: $(readelf -d minisinga/_core*.so 2>&1 | grep -o 'NEEDED.*' | grep -o '\[.*\]' | tr '\n' ' ')"
run sanity build 30 "$PY" -c "from minisinga import device as d; assert d.cuda_available(), 'no GPU'; print(d.create_cuda_gpu_on(0))" ||
  tail -5 "$OUT/build.log" >>"$REPORT"
say "device_query: $(timeout 30 "$PY" -c "from minisinga import device as d; print(d.device_query(0))" 2>&1 | tail -1)"

# The headline table first (minisinga eager and graph against PyTorch eager: ResNet-50, CNN,
# MLP), each row in the report and the output as soon as it is measured.
headline() {
  run bench_gpu bench "$1" "$PY" benchmarks/bench_gpu.py --iters 30 --skip 5 \
    --small-iters 2000 --repeat 3 --out "$OUT/headline.txt"
  cat "$OUT/headline.txt" 2>/dev/null | tee -a "$REPORT"
  rm -f "$OUT/headline.txt"
}
headline 180

# Optional plugins: xdist gives each worker its own CUDA context (tests/test_cuda.py ends a
# worker whose context hit a sticky error, so one bad kernel does not fail every later test);
# CUDA_LAUNCH_BLOCKING makes a kernel's fault surface in the test that launched it;
# MINISINGA_POISON_MEMORY=1 NaN-fills every block handed out (reads of unwritten memory fail).
PAR=()
"$PY" -c "import xdist" 2>/dev/null && PAR+=(-n 4)
"$PY" -c "import pytest_timeout" 2>/dev/null && PAR+=(--timeout 90)
run test_cuda test_cuda 170 env CUDA_LAUNCH_BLOCKING=1 MINISINGA_POISON_MEMORY=1 "$PY" -m pytest -q -rfE -p no:cacheprovider \
  "${PAR[@]}" tests -k cuda --ignore tests/test_cuda_emu.py --ignore tests/test_dist_nccl.py \
  --ignore tests/test_build.py
say "test_cuda: $(grep -E '[0-9]+ (passed|failed|skipped|error)' "$OUT/test_cuda.log" | tail -1)"
grep -E '^(FAILED|ERROR) ' "$OUT/test_cuda.log" | head -40 >>"$REPORT"

run nccl test_cuda 60 "$PY" -m pytest -q -rfE -p no:cacheprovider tests/test_dist_nccl.py
say "NCCL: $(tail -n 30 "$OUT/test_cuda.log" | grep -E '[0-9]+ (passed|failed|skipped|error)' | tail -1)"

# The main job on the GPU: real Fashion-MNIST, graph and eager, float32 and float16.
if [ -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
  for args in "-m 3" "-m 1 -g" "-m 1 -p float16"; do
    n0=$(cat "$OUT/examples.log" 2>/dev/null | wc -l)
    # shellcheck disable=SC2086
    run train_cnn examples 60 "$PY" examples/cnn/train_cnn.py cnn mnist $args --device cuda \
      --data-dir "$FMNIST"
    say "train_cnn cnn mnist $args: $(tail -n +$((n0 + 1)) "$OUT/examples.log" |
      grep -E 'Evaluation accuracy' | tr '\n' ' ')"
  done
fi

# ResNet-50 with autotuned convolutions (PyTorch's cuDNN benchmark mode is always on).
run bench_gpu bench 60 "$PY" benchmarks/bench_gpu.py --models resnet50 --autotune --iters 20 \
  --skip 5 --out "$OUT/bench_gpu.txt"
# The same ResNet-50 with each block ending in the fused BN + residual + ReLU op (not the
# SPEC's layer.Add joins; bit-identical results): what the fusion is worth on the GPU.
run bench_gpu bench 60 "$PY" benchmarks/bench_gpu.py --models resnet50 --fused-residual \
  --no-torch --iters 10 --skip 3 --out "$OUT/bench_gpu.txt"

# Every ResNet-50 convolution shape (batch 32), each pass, against cuDNN, autotuned: the whole
# table goes to bench.log; the step totals and every plan's time per shape to the report.
n0=$(cat "$OUT/bench.log" 2>/dev/null | wc -l)
run bench_conv bench 90 "$PY" benchmarks/bench_conv.py --device cuda --resnet50 --backward \
  --autotune --repeat 3 --min-time 0.05
tail -n +$((n0 + 1)) "$OUT/bench.log" |
  grep -E '^(device|layer|ResNet-50 step total|autotuned|  conv2d)' >>"$REPORT"

# SPEC's benchmark.py (graph and eager), and whole-step A/B rows of the GPU plan's choices:
# Winograd F(2x2) instead of F(4x4) for 3x3 convolutions, no Winograd, no split-K GEMMs.
if [ -f examples/cnn/benchmark.py ]; then
  for env in MODE=graph MODE=no-graph MINISINGA_CONV_WINOGRAD=2 MINISINGA_CONV_WINOGRAD=0 \
    MINISINGA_GEMM_SPLIT_K=0; do
    flag=()
    [ "$env" = MODE=no-graph ] && flag=(--no-graph)
    n0=$(cat "$OUT/bench.log" 2>/dev/null | wc -l)
    run benchmark.py bench 60 env "$env" "$PY" examples/cnn/benchmark.py --device cuda \
      --model resnet50 --batch-size 32 --iters 10 --skip 3 "${flag[@]}"
    say "ResNet-50 batch 32 (benchmark.py, ${env#MODE=}):" \
      "$(tail -n +$((n0 + 1)) "$OUT/bench.log" | grep -E '^Throughput')"
  done
fi

# TF32 on both sides (PyTorch's TF32 figure swung 1247-1723 between runs of 10 steps: 20 here),
# then ours autotuned (with TF32 the default plans trailed the autotuned ones, 2026-11-28:
# 1462 images/s against 1657; 1214 without Winograd).
run bench_gpu bench 60 "$PY" benchmarks/bench_gpu.py --models resnet50 --tf32 --iters 20 --skip 5 \
  --out "$OUT/bench_gpu.txt"
run bench_gpu bench 40 "$PY" benchmarks/bench_gpu.py --models resnet50 --tf32 --autotune \
  --no-torch --iters 20 --skip 5 --out "$OUT/bench_gpu.txt"
# float16 (train_cnn.py -p float16) against PyTorch's half-precision model; shows whether the
# float16 steps are captured as CUDA graphs too.
run bench_gpu bench 90 "$PY" benchmarks/bench_gpu.py --float16 --iters 10 --skip 3 \
  --small-iters 200 --out "$OUT/bench_gpu.txt"
if [ -f "$OUT/bench_gpu.txt" ]; then
  cat "$OUT/bench_gpu.txt" >>"$REPORT"
else
  tail -15 "$OUT/bench.log" >>"$REPORT"
fi

# Where a ResNet-50 step's time goes (graph replay, each node timed with CUDA events).
n0=$(cat "$OUT/bench.log" 2>/dev/null | wc -l)
run profile bench 60 "$PY" examples/cnn/benchmark.py --device cuda --model resnet50 \
  --batch-size 32 --iters 3 --skip 2 --verbosity 2
tail -n +$((n0 + 1)) "$OUT/bench.log" | grep -A 16 'Time profiling' >>"$REPORT"
# The same step in PyTorch, per op (cuDNN's convolutions), for comparison, and minisinga's
# step per CUDA kernel (its own and cuBLAS's, from CUPTI; to compare with the emulator's
# estimate, tests/cuda_emu/mem_table.py) (in bench.log).
run profile bench 60 "$PY" benchmarks/bench_gpu.py --models resnet50 --iters 3 --skip 2 \
  --profile-torch 3 --profile-kernels 3

# Whatever time is left: the headline table once more (a second sample of the same runs).
headline 150

say "done in $(($(date +%s) - START))s"
