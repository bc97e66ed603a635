#!/usr/bin/env bash
# Runs minisinga's CUDA tests on the CPU, in the CUDA emulator (include/msemu.h): builds _core
# with MINISINGA_CUDA=emu into $MSEMU_DIR (default: a folder of /tmp named after this checkout,
# so two checkouts never share one; the in-place build is left alone), puts the package's
# Python files beside that _core, and runs pytest there.
#   bash tests/cuda_emu/run.sh [pytest arguments]
# (default: every test case on the CUDA device, tests/test_cuda.py and the `cuda` cases of
# the device-parametrised tests, but those marked slow_emulated (whole example models, which
# take minutes each here; the CPU and real GPUs run them); `tests` runs the whole suite on
# this build).
# MSEMU_TRACE=FILE (MSEMU_DRYRUN=1): a line per launch, GEMM, copy and memset, for
# tests/cuda_emu/trace_table.py (which says how to trace one ResNet-50 training step).
# MSEMU_SCHEDULE=reverse: blocks, and the threads between two barriers, run last to first (a
# kernel with a race gives other results than in the default order, and its tests fail).
# MINISINGA_POISON_MEMORY=1 (not the emulator's: any build): fresh blocks are NaN-filled.
# MSEMU_ASAN=1: an AddressSanitizer build (kernels reading or writing past a tensor, into
# freed or cached memory, are reported and fail the test run).
# MSEMU_MEMTRACE=1: a build whose kernels count their memory accesses (MSEMU_MEMSTATS=FILE,
# tests/cuda_emu/mem_table.py; tests/test_emu_memtrace.py runs only in this build).
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR="${MSEMU_DIR:-${TMPDIR:-/tmp}/minisinga-emu-$(pwd | sha1sum | cut -c1-8)}"
PY="${PYTHON:-python}"
case "${MSEMU_SCHEDULE:-forward}" in
  forward | reverse) ;;
  *) echo "run.sh: MSEMU_SCHEDULE is '$MSEMU_SCHEDULE'; expected forward or reverse"; exit 2 ;;
esac
if [ "${MSEMU_ASAN:-0}" = 1 ]; then
  DIR="$DIR-asan"
  export MINISINGA_SANITIZE=address
  # Python is not instrumented: its allocations are not leaks to report. Reports go to
  # files (pytest captures stderr, and the process ends at the first report).
  rm -f "$DIR"/asan.*
  export ASAN_OPTIONS="detect_leaks=0:log_path=$DIR/asan:${ASAN_OPTIONS:-}"
  # libstdc++ too: ASan's exception interceptors need it loaded before Python loads _core.
  ASAN_LIB="$(${CXX:-g++} -print-file-name=libasan.so) $(${CXX:-g++} -print-file-name=libstdc++.so)"
  for lib in $ASAN_LIB; do
    [ -f "$lib" ] || { echo "run.sh: $lib not found (MSEMU_ASAN=1 needs GCC's libasan)"; exit 1; }
  done
fi
if [ "${MSEMU_MEMTRACE:-0}" = 1 ]; then
  [ "${MSEMU_ASAN:-0}" = 1 ] && { echo "run.sh: MSEMU_MEMTRACE and MSEMU_ASAN exclude each other"; exit 2; }
  DIR="$DIR-mem"
  export MSEMU_MEMTRACE
fi
mkdir -p "$DIR"
MINISINGA_CUDA=emu "$PY" setup.py -q build_ext -b "$DIR/build" -t "$DIR/tmp" >"$DIR.build.log" 2>&1 ||
  { tail -40 "$DIR.build.log"; exit 1; }
rm -rf "$DIR/pkg"
mkdir -p "$DIR/pkg/minisinga"
for f in minisinga/*; do
  case "$f" in *.so | *__pycache__) ;; *) ln -s "$PWD/$f" "$DIR/pkg/$f" ;; esac
done
ln -s "$DIR"/build/minisinga/_core*.so "$DIR/pkg/minisinga/"
export PYTHONPATH="$DIR/pkg${PYTHONPATH:+:$PYTHONPATH}"
[ -n "${ASAN_LIB:-}" ] && export LD_PRELOAD="$ASAN_LIB${LD_PRELOAD:+:$LD_PRELOAD}"
"$PY" -P -c 'import minisinga, sys; from minisinga import _core, device
assert _core.__file__.startswith(sys.argv[1]), _core.__file__
assert device.cuda_available(), "the emulated GPU is not visible"' "$DIR/pkg"
if [ $# -eq 0 ]; then
  set -- tests -q -x -k cuda -m "not slow_emulated"
fi
# -P: the checkout (the current directory) is not put ahead of PYTHONPATH.
rc=0
"$PY" -P -m pytest "$@" || rc=$?
if ls "$DIR"/asan.* >/dev/null 2>&1; then
  echo "AddressSanitizer reports ($DIR/asan.*):"
  grep -hE "ERROR: AddressSanitizer|^    #[0-9] |SUMMARY" "$DIR"/asan.* | head -60
  exit 1
fi
exit $rc
