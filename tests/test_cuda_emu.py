"""The CUDA emulator (tests/cuda_emu), which runs the CUDA tests on machines without a GPU:
its own checks (tests/cuda_emu/selftest.cu, built here with the C++ compiler) and the launch
rewriting. `bash tests/cuda_emu/run.sh` runs the CUDA test cases in it."""

import io
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMU = os.path.join(ROOT, "tests", "cuda_emu")
sys.path.insert(0, EMU)
import launches  # noqa: E402


def test_launch_rewriting():
    src = "K<T, F<U>><<<grid, dim3(4, 2), 0, s>>>(a, f(b, c));\nZ<<<1, 1>>>( );\n"
    out = launches.rewrite(src, "x.cu").splitlines()
    assert out[0] == '#line 1 "x.cu"'
    assert out[1] == ('::msemu::Launch(::msemu::Config(grid, dim3(4, 2), 0, s), "K<T, F<U>>", '
                      "[](auto... msemu_a) { K<T, F<U>>(msemu_a...); }, a, f(b, c));")
    assert out[2] == ('::msemu::Launch(::msemu::Config(1, 1), "Z", [](auto... msemu_a)'
                      " { Z(msemu_a...); } );")
    with pytest.raises(ValueError, match="x.cu:1: a launch must read"):
        launches.rewrite("K<<<1, 1>>>;", "x.cu")
    # the launch configuration on the next line: the same call, the line count kept
    out = launches.rewrite("K<T, 4>\n    <<<g, b>>>(a);\n", "x.cu").splitlines()
    assert out[1:] == ['::msemu::Launch(::msemu::Config(g, b), "K<T, 4>", [](auto... msemu_a) '
                       "{ K<T, 4>", "    (msemu_a...); }, a);"]


def test_emulator_selftest(tmp_path):
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        pytest.fail("no C++ compiler found (set CXX); the extension itself needs one")
    import scipy_openblas32 as ob

    src = tmp_path / "selftest.cc"
    launches.main([None, os.path.join(EMU, "selftest.cu"), str(src)])
    exe = tmp_path / "selftest"
    r = subprocess.run([cxx, "-std=c++17", "-O1", "-Wall", "-I", os.path.join(EMU, "include"),
                        "-I", ob.get_include_dir(), str(src), os.path.join(EMU, "runtime.cc"),
                        "-L", ob.get_lib_dir(), f"-l{ob.get_library()}",
                        f"-Wl,-rpath,{ob.get_lib_dir()}", "-o", str(exe)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    # Both schedules (tests/cuda_emu/run.sh runs the suite in either).
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MSEMU_SCHEDULE="reverse"))
    assert r.returncode == 0 and "ok reverse schedule" in r.stdout, r.stdout + r.stderr
    trace = tmp_path / "selftest.trace"
    env = {k: v for k, v in os.environ.items() if k != "MSEMU_SCHEDULE"}
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120,
                       env=dict(env, MSEMU_TRACE=str(trace)))
    assert r.returncode == 0 and r.stdout.endswith("all passed\n"), r.stdout + r.stderr
    assert "ok forward schedule" in r.stdout and r.stdout.count("ok ") == 23, r.stdout
    # The trace: kernels by name with their launch shape and integer arguments, the GEMMs'
    # column-major sizes, copies and memsets (an ill-shaped launch is traced, then refused).
    lines = trace.read_text().splitlines()
    assert "K\tFill\t2 1 1\t32 1 1\t0\t_ 1 7 " in lines, lines[:20]
    assert "K\tCount\t2 3 1\t4 2 2\t0\t_ " in lines, lines[:20]
    assert "G\ttn fff\t3 4 5 2" in lines, [v for v in lines if v.startswith("G")]
    assert "M\t4" in lines and "C\t2\t4" in lines
    import trace_table  # tests/cuda_emu/trace_table.py

    out = io.StringIO()
    trace_table.table(lines, out)
    assert "Fill" in out.getvalue() and "GEMMs: " in out.getvalue(), out.getvalue()
    with pytest.raises(ValueError, match="not a trace line: 'X"):
        trace_table.table(["X\tsomething\n"], io.StringIO())


def test_asan_mode_names_a_missing_libasan(tmp_path):
    # A compiler without libasan answers -print-file-name with the bare name; run.sh must say
    # so before building anything, not fail later with a loader error.
    fake = tmp_path / "cxx"
    fake.write_text("#!/bin/sh\necho \"${1#-print-file-name=}\"\n")
    fake.chmod(0o755)
    env = dict(os.environ, MSEMU_ASAN="1", CXX=str(fake), MSEMU_DIR=str(tmp_path / "emu"))
    r = subprocess.run(["bash", os.path.join(EMU, "run.sh")], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "run.sh: libasan.so not found (MSEMU_ASAN=1 needs GCC's libasan)" in r.stdout
    assert not (tmp_path / "emu-asan" / "build").exists()
