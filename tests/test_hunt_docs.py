"""Whether the documentation is true: README.md, examples/cnn/README.md, csrc/README.md, the
examples' and benchmarks' --help, against the code.

Cheap drift checks: the Python snippets of README.md run; every command line the READMEs show
parses with its script's own argparse (run in one subprocess that stops each script at
parse_args, so nothing trains); every file path, environment variable and C++ name they cite
exists and is used; the train_cnn.py option table matches the parser; the SPEC-cnn options
appear in each script's --help with their defaults; the example scripts find minisinga in a
checkout where it is built in place but not installed (as examples/cnn/README.md promises).
What test_examples_cnn.py / test_hunt_examples.py already run (training, parser defaults of
train_cnn.py and train_mpi.py) is not repeated.

Failing now (see /tmp/hunt/docs.md):
  test_readme_onnx_snippet_runs
  test_example_scripts_find_minisinga_in_a_checkout
  test_verbosity_doc_matches_the_profile
  test_help_descriptions_are_not_cut_off
  test_train_mpi_docstring_matches_its_device_rule
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CNN_DIR = REPO / "examples" / "cnn"
README = REPO / "README.md"
CNN_README = CNN_DIR / "README.md"
CSRC_README = REPO / "csrc" / "README.md"
DOCS = (README, CNN_README, CSRC_README)

# ---- helpers ----------------------------------------------------------------------------------

# Runs scripts as `python SCRIPT ARGS` from a folder would, in one process, up to their first
# parse_args: the parsed options (or argparse's exit status and message) come back as JSON.
# minisinga is importable only once the script itself has put the checkout on sys.path (the
# editable install's finder and PYTHONPATH are taken away), which is what a checkout built
# in place but not installed gives.
_RUNNER = r'''
import argparse, builtins, contextlib, io, json, os, runpy, sys
repo, cmds, guard = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1"
import minisinga  # the build the suite tests; scripts must still find the checkout themselves
import minisinga.dist, minisinga.opt, minisinga.layer, minisinga.model  # noqa: E401
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
real_repo = os.path.realpath(repo)
pp = set(os.environ.get("PYTHONPATH", "").split(os.pathsep)) - {""}
base_path = [p for p in sys.path if p not in pp and os.path.realpath(p or ".") != real_repo]
real_import = builtins.__import__

def on_path():
    return any(os.path.realpath(p or os.getcwd()) == real_repo for p in sys.path)

def guarded(name, globals=None, locals=None, fromlist=(), level=0):
    caller = (globals or {}).get("__name__", "") or ""
    if (guard and level == 0 and name.split(".")[0] == "minisinga"
            and not caller.startswith("minisinga") and not on_path()):
        raise ModuleNotFoundError("No module named 'minisinga'", name="minisinga")
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = guarded

class Parsed(Exception):
    pass

orig = argparse.ArgumentParser.parse_args

def parse_args(self, args=None, namespace=None):
    ns = orig(self, args, namespace)
    raise Parsed(self.description, {k: v for k, v in vars(ns).items()})

argparse.ArgumentParser.parse_args = parse_args
results = []
for cwd, script, args in cmds:
    if not script.startswith((os.path.join(repo, "examples", ""),
                              os.path.join(repo, "benchmarks", ""))):
        results.append({"script": script, "args": args, "error": "not an example script"})
        continue
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None) or ""
        if f.startswith(os.path.join(repo, "examples")) or f.startswith(
                os.path.join(repo, "benchmarks")):
            del sys.modules[name]
    sys.path[:] = [os.path.dirname(os.path.abspath(script))] + base_path[1:]
    os.chdir(cwd)
    sys.argv = [script] + args
    out, err = io.StringIO(), io.StringIO()
    res = {"script": script, "args": args}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(script, run_name="__main__")
        res["error"] = "returned without parsing a command line"
    except Parsed as p:
        res["description"], res["options"] = p.args[0], {k: repr(v) for k, v in p.args[1].items()}
    except SystemExit as e:
        res["exit"] = e.code if isinstance(e.code, int) else 1
        res["error"] = err.getvalue()[-600:] or str(e.code)
    except BaseException as e:
        res["error"] = f"{type(e).__name__}: {e}"
    results.append(res)
print(json.dumps(results))
'''


def parse_commands(cmds, checkout_only: bool = False):
    """[(cwd, script, args)] -> one result dict per command (see _RUNNER); `checkout_only`:
    minisinga importable only from the checkout the script puts on sys.path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # the build under test, for the import
    env.setdefault("OMP_NUM_THREADS", "1")
    r = subprocess.run([sys.executable, "-c", _RUNNER, str(REPO),
                        json.dumps([[str(c), str(s), list(a)] for c, s, a in cmds]),
                        "1" if checkout_only else "0"],
                       capture_output=True, text=True, timeout=120, env=env, cwd="/")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def code_blocks(path: Path, lang: str):
    return re.findall(rf"^ *```{lang}\n(.*?)^ *```", path.read_text(), re.S | re.M)


def inline_code(path: Path):
    return re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", path.read_text(),
                                                flags=re.S | re.M))


def resolve_script(name: str, doc: Path):
    """The file a script named in `doc` is: relative to the doc's folder, else the root."""
    for base in (doc.parent, REPO):
        if (base / name).is_file():
            return base / name
    return None


def doc_commands():
    """Every `python X.py ...` (and `bash run.sh ...`) command line of the three READMEs, as
    (doc, cwd, script name, args): the fenced bash blocks' lines and the inline code spans
    with arguments (optional parts in [] included, lines with a '...' placeholder skipped)."""
    out = []
    for doc in DOCS:
        lines = [ln.split(" #")[0] for b in code_blocks(doc, "bash") for ln in b.splitlines()]
        lines += inline_code(doc)
        for line in lines:
            for part in line.split("&&"):
                words = part.replace("[", " ").replace("]", " ").split()
                while words and (words[0] in ("mpiexec", "-n", "python", "python3")
                                 or words[0].isdigit() or "=" in words[0]):
                    words = words[1:]
                if (not words or "..." in words or "<" in part
                        or any(w.isalpha() and w.isupper() for w in words)):  # MODEL DATA
                    continue
                if words[0] == "bash" and words[1:2] == ["run.sh"]:
                    words = ["train_cnn.py", "cnn", "mnist"] + words[2:]
                script = resolve_script(words[0], doc) if words[0].endswith(".py") else None
                if len(words) > 1 and script and script.parent.name != REPO.name:  # no setup.py
                    out.append((doc, doc.parent, words[0], words[1:]))
    return out


# ---- README.md's Python ----------------------------------------------------------------------

def _taste_namespace():
    """Runs README.md's first Python block ("A taste") with `batches` (the user's numpy
    data, which the snippet leaves free) given as three small random batches."""
    rng = np.random.default_rng(0)
    ns = {"batches": [(rng.standard_normal((64, 784), dtype=np.float32),
                       rng.integers(0, 10, 64).astype(np.int32)) for _ in range(3)]}
    exec(compile(code_blocks(README, "python")[0], "README.md[python 0]", "exec"), ns)
    return ns


def test_readme_taste_snippet_trains():
    from minisinga import tensor

    ns = _taste_namespace()
    loss = float(tensor.to_numpy(ns["loss"]).reshape(-1)[0])
    assert np.isfinite(loss) and tuple(ns["out"].shape) == (64, 10)
    assert ns["m"].fc1.W.shape == (784, 100)  # Linear(100) sized itself on the first call


def test_readme_onnx_snippet_runs(tmp_path, monkeypatch):
    """BUG (doc): README.md's ONNX block calls `sonnx.prepare(onnx_model, device)`; the only
    `device` in scope is the `minisinga.device` module the first block imported, which prepare
    refuses ("device must be 'CPU', 'CUDA', 'CUDA:<id>' or a minisinga Device"). It means
    `dev` (or "CPU"). (onnx is a [test] extra.)"""
    from minisinga import opt, tensor

    monkeypatch.chdir(tmp_path)  # the block writes cnn.onnx
    ns = _taste_namespace()
    ns["x_numpy"] = ns["batches"][0][0]
    exec(compile(code_blocks(README, "python")[1], "README.md[python 1]", "exec"), ns)
    assert ns["probs"].shape == (64, 10) and (tmp_path / "cnn.onnx").is_file()
    # FineTune, as the block defines it, trains
    ft = ns["FineTune"](ns["onnx_model"])
    ft.set_optimizer(opt.SGD(lr=0.01))
    ft.compile([ns["tx"]], is_train=True, use_graph=False)
    ft.train()
    _, loss = ft(ns["tx"], ns["ty"])
    assert np.isfinite(tensor.to_numpy(loss)).all()


# ---- command lines ---------------------------------------------------------------------------

def test_doc_command_lines_parse():
    """Every command line the READMEs show is accepted by its script's argparse."""
    cmds = doc_commands()
    assert len(cmds) >= 20, cmds  # the extraction still finds the commands
    results = parse_commands([(cwd, resolve_script(s, d), a) for d, cwd, s, a in cmds])
    bad = [(r["script"], r["args"], r.get("error")) for r in results if "options" not in r]
    assert not bad, bad


def test_run_sh_runs_the_documented_grid():
    text = (CNN_DIR / "run.sh").read_text()
    assert re.search(r"for model in mlp cnn resnet alexnet; do", text)
    assert re.search(r"for data in mnist cifar10 cifar100; do", text)
    assert 'python train_cnn.py "$model" "$data" "$@"' in text


def _scripts():
    return sorted([*CNN_DIR.glob("*.py"), *CNN_DIR.glob("autograd/*.py"),
                   *CNN_DIR.glob("data/download_*.py"), *REPO.glob("benchmarks/*.py"),
                   *REPO.glob("examples/rnn/*.py"), *REPO.glob("examples/onnx/*.py")])


@pytest.fixture(scope="module")
def help_results():
    """--help of every script, as run from the checkout without an installed minisinga."""
    scripts = _scripts()
    return dict(zip(scripts, parse_commands([(CNN_DIR, s, ["--help"]) for s in scripts],
                                            checkout_only=True)))


def test_example_scripts_find_minisinga_in_a_checkout(help_results):
    """BUG: examples/cnn/README.md:16-18 says the commands run with minisinga "built in place
    (`python setup.py build_ext --inplace`; the scripts then find the package in the
    checkout)". autograd/resnet_dist.py imports model.resnet (which imports minisinga)
    before train_cnn, the module that puts the checkout on sys.path: ModuleNotFoundError.
    benchmarks/bench_conv.py is the one benchmark that does not add the checkout either."""
    failed = {str(s.relative_to(REPO)): r["error"] for s, r in help_results.items()
              if r.get("exit") not in (0, None) or ("error" in r and "exit" not in r)}
    assert not failed, failed


def test_help_descriptions_are_not_cut_off():
    """BUG (cosmetic): scripts that take the first line of their docstring as the --help
    description print half a sentence where the docstring's first paragraph goes on
    ("... trained by N processes on one host with partial", "... minisinga eager, minisinga
    graph (replays captured as one CUDA"). The first line must then be the whole paragraph."""
    cut = {}
    for s in _scripts():
        text = s.read_text()
        if not re.search(r"__doc__\.(?:splitlines\(\)|split\(\"\\n\"\))\[0\]", text):
            continue
        lines = text.split('"""')[1].splitlines()
        if len(lines) > 1 and lines[1].strip() and not lines[0].endswith((".", ":")):
            cut[str(s.relative_to(REPO))] = lines[0]
    assert len([s for s in _scripts() if "__doc__.split" in s.read_text()]) >= 8
    assert not cut, cut


SPEC_TRAIN = ["-p", "-m", "--max-epoch", "-b", "--batch-size", "-l", "--learning-rate", "-i",
              "--device-id", "-g", "--disable-graph", "-v", "--log-verbosity", "--device",
              "--data-dir", "--max-steps", "--seed", "--image-size"]
SPEC_DIST = ["-d", "--dist-option", "-s", "--sparsification"]


@pytest.mark.parametrize("script,options", [
    ("train_cnn.py", SPEC_TRAIN),
    ("train_mpi.py", SPEC_TRAIN + SPEC_DIST),
    ("train_multiprocess.py", SPEC_TRAIN + SPEC_DIST + ["-w", "--world-size"]),
    ("benchmark.py", ["--dist", "--no-graph", "--verbosity", "--device", "--batch-size",
                      "--iters", "--skip", "--model", "--image-size", "--num-classes"]),
])
def test_spec_options_are_in_help(script, options):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(CNN_DIR / script), "--help"], capture_output=True,
                       text=True, timeout=60, env=env, cwd=str(CNN_DIR))
    assert r.returncode == 0, r.stderr[-2000:]
    shown = set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", r.stdout))
    assert not set(options) - shown, sorted(set(options) - shown)
    if "-d" in options:
        assert "{plain,half,partialUpdate,sparseTopK,sparseThreshold}" in r.stdout


def test_train_mpi_docstring_matches_its_device_rule(monkeypatch):
    """BUG (doc): train_mpi.py's docstring says "CUDA ranks all-reduce through NCCL (rank r
    uses GPU device_id + local rank)", but check_devices refuses any --device-id but 0 ("the
    distributed scripts put local rank r on GPU r") and run() puts rank r on GPU local_rank,
    as the -i help says."""
    import argparse

    monkeypatch.syspath_prepend(str(CNN_DIR))
    import train_mpi

    with pytest.raises(SystemExit, match="put local rank r on GPU r"):
        train_mpi.check_devices(argparse.Namespace(device="cuda", device_id=1), 1)
    assert "device_id + local rank" not in train_mpi.__doc__


def test_benchmark_and_multiprocess_defaults_match_spec():
    """SPEC-cnn: benchmark.py is ResNet-50, batch 32, 3x224x224, 1000 classes, 100 iterations
    after 5 skipped, graph on; train_multiprocess.py's -w/--world-size defaults to 2 and its
    models are mlp, cnn, resnet, xceptionnet."""
    bench, multi, bad = parse_commands([
        (CNN_DIR, CNN_DIR / "benchmark.py", []),
        (CNN_DIR, CNN_DIR / "train_multiprocess.py", ["cnn", "mnist"]),
        (CNN_DIR, CNN_DIR / "train_multiprocess.py", ["alexnet", "mnist"])])
    assert bench.get("options") == {
        "DIST": "False", "graph": "True", "verbosity": "0", "device": "'auto'",
        "batch_size": "32", "iters": "100", "skip": "5", "model": "'resnet50'",
        "image_size": "224", "num_classes": "1000"}, bench
    opts = multi["options"]
    assert (opts["world_size"], opts["dist_option"], opts["spars"]) == ("2", "'plain'", "0.05")
    assert bad.get("exit") == 2 and "invalid choice: 'alexnet'" in bad["error"], bad


def test_train_cnn_option_table_matches_the_parser(monkeypatch):
    """examples/cnn/README.md's table (option | default | meaning) against train_cnn.py's
    parser: every option listed exists, and every default given as a value is the parser's."""
    monkeypatch.syspath_prepend(str(CNN_DIR))
    import train_cnn

    p = train_cnn.build_parser()
    by_flag = {s: a for a in p._actions for s in a.option_strings}
    table = CNN_README.read_text().split("| option | default | meaning |")[1].split("\n\n")[0]
    rows = re.findall(r"^\| `([^`|]+)`(?:, `([^`|]+)`)? \| ([^|]*) \|", table, re.M)
    rows = [r for r in rows if r[0].startswith("-")]
    assert len(rows) >= 12, rows
    for row in rows:
        flags = [f.strip() for f in ", ".join(x for x in row[:2] if x).split(",")]
        default = row[2].strip().strip("`")
        actions = {id(by_flag.get(f)) for f in flags}
        assert None not in [by_flag.get(f) for f in flags] and len(actions) == 1, row
        a = by_flag[flags[0]]
        if re.fullmatch(r"[\d.]+|float32|auto", default):
            assert str(a.default) == default, (row, a.default)
        elif default == "graph on":
            assert a.default is True and a.const is False  # store_false: -g turns it off
        else:  # "all", "see above", "model's": no value, the script decides
            assert a.default is None, (row, a.default)
    positional = {a.dest: a.choices for a in p._actions if not a.option_strings}
    assert set(positional["model"]) == set(re.findall(
        r"`(\w+)`", re.search(r"^\| `MODEL` \|[^|]*\|(.*)\|$", table, re.M).group(1)))
    assert set(positional["data"]) == {"mnist", "cifar10", "cifar100"}


# ---- names the docs cite ---------------------------------------------------------------------

def _sources(*roots, exts=(".py", ".cc", ".h", ".cu", ".cuh", ".sh")):
    for root in roots:
        root = REPO / root
        files = [root] if root.is_file() else root.rglob("*")
        for f in files:
            if f.suffix in exts and "__pycache__" not in f.parts and not f.name.startswith(
                    "test_"):
                yield f


def test_documented_env_vars_are_read():
    """Every MINISINGA_* / MSEMU_* / OMP_* variable the READMEs and SPEC name is read by the
    code (C++, the package, setup.py, the emulator, the examples), not only by tests."""
    docs = [*DOCS, Path("/work/shared/SPEC-cnn.md")]
    named = set()
    for d in docs:
        if d.is_file():
            named |= set(re.findall(r"\b((?:MINISINGA|MSEMU|OMP)_[A-Z_]+[A-Z])\b", d.read_text()))
    assert {"MINISINGA_CUDA", "MINISINGA_POISON_MEMORY", "MINISINGA_DATA"} <= named
    lines = [(f.suffix, ln) for f in _sources("csrc", "minisinga", "setup.py", "tests/cuda_emu",
                                              "examples", "tests/gpu")
             for ln in f.read_text(errors="replace").splitlines()]

    def reads(v, suffix, ln):
        if v not in ln:
            return False
        if any(r in ln for r in ("getenv", "environ", "EnvCount(", "OpenNamedBy(")):
            return True
        return suffix == ".sh" and ("$" + v in ln or "${" + v in ln)

    unread = sorted(v for v in named if not any(reads(v, sfx, ln) for sfx, ln in lines))
    assert not unread, unread


def test_documented_paths_exist():
    """Every file or folder path in backticks in the READMEs (relative to the doc's folder, the
    repository root, csrc/ or csrc/kernels/) exists."""
    missing = []
    for doc in DOCS:
        spans = inline_code(doc) + [w for b in code_blocks(doc, "bash") for w in b.split()]
        for span in spans:
            for tok in re.findall(r"[\w./-]+\.(?:py|h|cc|cu|sh|md)\b", span):
                if tok.startswith(("-", "~", "/")):
                    continue
                bases = (doc.parent, REPO, REPO / "csrc", REPO / "csrc" / "kernels",
                         REPO / "csrc" / "kernels" / "cuda", CNN_DIR / "autograd",
                         REPO / "benchmarks")
                if not any((b / tok).exists() for b in bases):
                    missing.append((str(doc.relative_to(REPO)), tok))
    assert not missing, missing


# The csrc README's C++ names (macros, classes, functions, members).
CSRC_NAMES = re.compile(r"^(?:\w+::)*([A-Z][A-Za-z0-9_]+|[a-z]+_[a-z_]+)(?:\(.*\))?$")


def test_csrc_readme_names_exist():
    names = set()
    for span in inline_code(CSRC_README):
        for part in ([] if "/" in span else re.split(r",\s*", span)):
            m = CSRC_NAMES.match(part.strip())
            if m and not part.startswith(("MINISINGA_", "MSEMU_")):
                names.add(part.strip().split("(")[0].split("::")[-1])
    names -= {"ValueError", "TypeError", "RuntimeError"}  # Python's
    assert {"MS_CHECK", "FastDiv", "RaiseIfFlagged", "capture_rng_state"} <= names, names
    text = "\n".join(f.read_text(errors="replace") for f in _sources("csrc"))
    missing = sorted(n for n in names if not re.search(rf"\b{re.escape(n)}\b", text))
    assert not missing, missing


def test_csrc_readme_snippet_matches_the_exec_interface():
    """The `Exec(closure, reads, writes, name)` / MS_DISPATCH / TensorRef usage the README
    shows is the core's."""
    snippet = code_blocks(CSRC_README, "cpp")[0]
    assert "MS_DISPATCH(ctx, MyKernel" in snippet and "TensorRef" in snippet
    header = (REPO / "csrc" / "core" / "device.h").read_text()
    assert re.search(r"void Exec\(Fn fn, std::vector<BlockPtr> reads, std::vector<BlockPtr> "
                     r"writes,\s*(const )?std::string", header)
    disp = (REPO / "csrc" / "core" / "dispatch.h").read_text()
    assert re.search(r"#define MS_DISPATCH\(ctx, fn, \.\.\.\)", disp)
    tensor_h = (REPO / "csrc" / "core" / "tensor.h").read_text()
    assert "TensorRef ref()" in tensor_h or re.search(r"TensorRef\s+ref\(\)", tensor_h)


def test_csrc_readme_families_have_every_part():
    """"kernels/<family>.h declares the kernels of one op family for cpu:: and cuda::",
    implemented in kernels/cpu/<family>.cc and kernels/cuda/<family>.cu, the op in
    ops/<family>.{h,cc}, bound in bind/<family>.cc and registered by module.cc's Init<Family>."""
    csrc = REPO / "csrc"
    families = sorted(p.stem for p in (csrc / "kernels" / "cpu").glob("*.cc"))
    module = (csrc / "bind" / "module.cc").read_text()
    for fam in families:
        if fam == "winograd":  # conv's kernels, split out: no op or binding of its own
            assert (csrc / "kernels" / "cuda" / "winograd.cu").is_file()
            continue
        for part in (f"kernels/{fam}.h", f"kernels/cuda/{fam}.cu", f"ops/{fam}.h",
                     f"ops/{fam}.cc", f"bind/{fam}.cc"):
            assert (csrc / part).is_file(), part
        assert re.search(rf"Init{fam}\(m\)", module, re.I), fam


# ---- numbers and behaviour the docs state ----------------------------------------------------

def test_conv_path_table_of_csrc_readme():
    """csrc/README.md's table: which path `_core._conv2d_path` names for which shapes (CPU,
    and the GPU's plan run on the CPU)."""
    from minisinga import _core, device

    dev = device.get_default_device()
    path = _core._conv2d_path
    p1 = [1, 1, 1, 1]
    assert path(dev, [8, 64, 56, 56], [64, 64, 3, 3], padding=p1) == "winograd 4x4"
    assert path(dev, [8, 64, 56, 56], [64, 64, 3, 3], padding=[2] * 4) == "winograd 4x4"
    assert path(dev, [8, 64, 56, 56], [64, 64, 3, 3], padding=[3] * 4) != "winograd 4x4"
    assert path(dev, [8, 63, 56, 56], [64, 63, 3, 3], padding=p1) != "winograd 4x4"
    assert path(dev, [1, 64, 8, 8], [64, 64, 3, 3], padding=p1) != "winograd 4x4"  # 4 tiles
    assert path(dev, [8, 64, 56, 56], [64, 64, 3, 3], padding=p1,
                weight_grad=True) != "winograd 4x4"  # dw from 128 channels
    assert path(dev, [8, 128, 28, 28], [128, 128, 3, 3], padding=p1,
                weight_grad=True) == "winograd 4x4"
    assert path(dev, [8, 64, 56, 56], [64, 1, 3, 3], padding=p1, groups=64) == "depthwise"
    assert path(dev, [8, 64, 56, 56], [64, 64, 1, 1]) == "direct"
    assert path(dev, [8, 3, 28, 28], [20, 3, 5, 5]) in ("chunks", "bands")
    was = _core._set_conv_gpu_plan_on_cpu(True)
    try:
        assert path(dev, [8, 16, 56, 56], [16, 16, 3, 3], padding=p1) == "winograd 4x4"
        assert path(dev, [8, 15, 56, 56], [16, 15, 3, 3], padding=p1) != "winograd 4x4"
        assert path(dev, [8, 3, 40, 40], [16, 3, 5, 5]) == "batched"  # 1296 output pixels
        assert path(dev, [8, 3, 20, 20], [16, 3, 5, 5]) == "chunks"   # 256
        assert path(dev, [8, 64, 56, 56], [64, 64, 1, 1]) == "batched-direct"
    finally:
        _core._set_conv_gpu_plan_on_cpu(was)


def test_readme_numbers_about_onnx():
    """README.md: "Export writes opset 13", "Import reads opsets 11 to 21, 105 operator types",
    "13 torchvision architectures"."""
    pytest.importorskip("onnx")
    from minisinga.sonnx import backend, frontend

    text = README.read_text()
    assert "opset 13" in text and frontend.OPSET == 13
    m = re.search(r"opsets (\d+)\s+to (\d+), (\d+) operator types", text)
    assert m and (backend.MIN_OPSET, backend.MAX_OPSET) == (int(m[1]), int(m[2]))
    assert len(backend.supported_ops()) == int(m[3])
    src = (REPO / "tests" / "data" / "check_torchvision_import.py").read_text()
    models = re.search(r"MODELS = \[(.*?)\]", src, re.S).group(1)
    n = re.search(r"matches PyTorch on (\d+) torchvision architectures", text)
    assert n and len(re.findall(r'"\w+"', models)) == int(n[1])


def test_model_numbers_in_the_docs(monkeypatch):
    """AlexNet "needs at least 99"; the default input sides 28 / 224 / 224 / 299; ResNet's
    AvgPool2d(7, 1) and Xception's MaxPool2d(10, 1) heads at those sides (SPEC-cnn); the
    AlexNet comment's 256 * 2 * 2 = 1024 features at 224; 937 batches of 64 in 60000."""
    monkeypatch.syspath_prepend(str(CNN_DIR))
    from model import alexnet, cnn, resnet, xceptionnet

    assert alexnet._feature_side(99) == 1 and alexnet._feature_side(98) < 1
    assert alexnet._feature_side(224) == 2
    with pytest.raises(ValueError, match="at least 99"):
        alexnet.AlexNet(input_size=98)
    assert resnet._feature_side(224) == 7 and xceptionnet._feature_side(299) == 10
    sides = [cnn.CNN().input_size, alexnet.AlexNet().input_size,
             resnet.resnet50().input_size, xceptionnet.Xception().input_size]
    assert sides == [28, 224, 224, 299]
    assert 60000 // 64 == 937 and "937 for 60000 images of batch 64" in CNN_README.read_text()


def test_dist_timeout_default_is_the_documented_one(monkeypatch):
    from minisinga.dist import base

    monkeypatch.delenv("MINISINGA_DIST_TIMEOUT", raising=False)
    assert base.timeout_seconds() == 60
    assert "`MINISINGA_DIST_TIMEOUT` seconds (60)" in CNN_README.read_text()


def _profile(verbosity: int, graph: bool) -> str:
    """PrintTimeProfiling's output after three steps of a small model on a fresh CPU device
    at `verbosity`, graph or eager (as train_cnn.py -v N [-g])."""
    from minisinga import device, layer, model, opt, tensor

    class Net(model.Model):
        def __init__(self):
            super().__init__()
            self.fc = layer.Linear(3)
            self.loss = layer.SoftMaxCrossEntropy()

        def forward(self, x):
            return self.fc(x)

        def train_one_batch(self, x, y):
            out = self.forward(x)
            loss = self.loss(out, y)
            self.optimizer(loss)
            return out, loss

    dev = device.create_cpu_device()
    tx = tensor.Tensor((4, 5), dev)
    tx.gaussian(0.0, 1.0)
    ty = tensor.Tensor((4,), dev, dtype=tensor.int32)
    ty.copy_from_numpy(np.array([0, 1, 2, 0], np.int32))
    net = Net()
    net.set_optimizer(opt.SGD(lr=0.1))
    net.compile([tx], is_train=True, use_graph=graph)
    dev.SetVerbosity(verbosity)
    dev.SetSkipIteration(0)
    for _ in range(3):
        net(tx, ty)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        dev.PrintTimeProfiling()
    return buf.getvalue()


def test_profile_levels():
    """What PrintTimeProfiling prints (SINGA's levels): verbosity 1 the forward / backward /
    update phases, 2 every op by name, only for recorded-graph replays."""
    one, two = _profile(1, True), _profile(2, True)
    assert re.search(r"^forward\s", one, re.M) and re.search(r"^backward\s", one, re.M)
    assert not re.search(r"^Matmul\s", one, re.M)
    assert re.search(r"^Matmul\s", two, re.M) and re.search(r"^SgdUpdate\s", two, re.M)
    assert _profile(0, True) == ""


def test_verbosity_doc_matches_the_profile():
    """BUG (doc): examples/cnn/README.md:55 says `-v` "> 0: per-op times at the end
    (`dev.PrintTimeProfiling()`)", :117-118 "the per-op profile when `--verbosity` > 0", and
    benchmark.py's --help "per-op times when > 0". Verbosity 1 prints only the forward /
    backward / update totals (per-op needs 2, as in SINGA), and an eager run (-g, --no-graph)
    prints nothing at any verbosity."""
    one = _profile(1, True)
    per_op_at_one = bool(re.search(r"^Matmul\s", one, re.M))
    eager_prints = _profile(2, False) != ""
    claims = {
        "examples/cnn/README.md -v row": re.search(r"> 0: per-op times", CNN_README.read_text()),
        "examples/cnn/README.md benchmark.py": re.search(
            r"per-op profile when\s+`--verbosity` > 0", CNN_README.read_text()),
        "benchmark.py --help": re.search(r"per-op times when > 0",
                                         (CNN_DIR / "benchmark.py").read_text()),
    }
    wrong = [k for k, v in claims.items() if v and not (per_op_at_one and eager_prints)]
    assert not wrong, (wrong, one)


def test_module_docstring_claims():
    """tensor.py: module functions do not record, operators do (when training); autograd:
    `autograd.training = True` and `with autograd.train_mode()` set one switch; compare.py:
    outputs in the inputs' dtype, logic ops read NaN as true; variadic.py: each input's
    gradient summed back to its shape."""
    from minisinga import autograd, tensor

    a = tensor.from_numpy(np.array([[1.0, np.nan]], np.float32))
    a.requires_grad = a.stores_grad = True
    autograd.training = True
    try:
        assert tensor.exp(a).creator is None and tensor.sum(a).creator is None
        assert (a + a).creator is not None and (-a).creator is not None
    finally:
        autograd.training = False
    assert (a + a).creator is None
    with autograd.train_mode():
        assert autograd.training and autograd.is_training()
    assert not autograd.training
    i = tensor.from_numpy(np.array([1, 0, 3], np.int32))
    j = tensor.from_numpy(np.array([2, 0, 1], np.int32))
    r = autograd.less(i, j)
    assert r.dtype == tensor.int32 and tensor.to_numpy(r).tolist() == [1, 0, 0]
    z = tensor.from_numpy(np.array([[1.0, 1.0]], np.float32))
    assert tensor.to_numpy(autograd._and(a, z)).tolist() == [[1.0, 1.0]]
    assert tensor.to_numpy(autograd._not(a)).tolist() == [[0.0, 0.0]]
    autograd.training = True
    try:
        b = tensor.from_numpy(np.ones((3,), np.float32))
        c = tensor.from_numpy(np.ones((2, 1), np.float32))
        x = tensor.from_numpy(np.ones((2, 3), np.float32))
        for t in (b, c, x):
            t.requires_grad = t.stores_grad = True
        y = autograd.sum(x, b, c)
        grads = {id(p): g.shape for p, g in autograd.backward(autograd.reduce_sum(y, [0, 1], 0))}
        assert [grads[id(t)] for t in (x, b, c)] == [(2, 3), (3,), (2, 1)]
    finally:
        autograd.training = False


def test_rnn_docstring_parameter_layout():
    """rnn.py: names Wx / Wh / b (bh for GRU) with _l{k} and _reverse, shapes (in, G*H),
    (H, G*H), (G*H,) with `in` = H * num_directions above layer 0, uniform in
    [-1/sqrt(H), 1/sqrt(H)]; stacked states (num_layers * num_directions, batch, H)."""
    from minisinga import autograd, layer, tensor

    H, In = 7, 5
    for cls, g in ((layer.RNN, 1), (layer.LSTM, 4), (layer.GRU, 3)):
        m = cls(In, H, num_layers=2, bidirectional=True)
        x = tensor.Tensor((3, 2, In))
        x.gaussian(0.0, 1.0)
        autograd.training = True
        try:
            out = m(x)
        finally:
            autograd.training = False
        shapes = {k: tuple(v.shape) for k, v in m.get_params().items()}
        for suffix, fan_in in (("", In), ("_reverse", In), ("_l1", 2 * H),
                               ("_l1_reverse", 2 * H)):
            assert shapes["Wx" + suffix] == (fan_in, g * H)
            assert shapes["Wh" + suffix] == (H, g * H) and shapes["b" + suffix] == (g * H,)
            assert (("bh" + suffix) in shapes) == (cls is layer.GRU)
        bound = 1 / np.sqrt(H)
        assert all(np.abs(tensor.to_numpy(v)).max() <= bound for v in m.get_params().values())
        y, *states = out
        assert tuple(y.shape) == (3, 2, 2 * H)
        assert all(tuple(s.shape) == (4, 2, H) for s in states)
