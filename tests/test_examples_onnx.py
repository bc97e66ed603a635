"""examples/onnx/onnx_cnn.py on real Fashion-MNIST: train, export, check in onnxruntime,
import, fine-tune."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dist_helpers import DATA, need_data, pythonpath

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_onnx_example_round_trip(tmp_path, model):
    need_data()
    out = tmp_path / f"{model}.onnx"
    env = dict(os.environ, PYTHONPATH=pythonpath(), OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "onnx" / "onnx_cnn.py"), model, "mnist",
         "--data-dir", DATA, "--steps", "60", "--eval-size", "512", "--out", str(out),
         "--device", "cpu"], capture_output=True, text=True, timeout=300, env=env)
    text = proc.stdout
    assert proc.returncode == 0, text + proc.stderr
    trained = float(re.search(r"loss [\d.]+, validation accuracy ([\d.]+)", text).group(1))
    imported = float(re.search(r"imported: \d+ parameters, validation accuracy ([\d.]+)",
                               text).group(1))
    diff = float(re.search(r"largest logit difference ([\d.e+-]+)", text).group(1))
    tuned = re.search(r"fine-tuned the imported model: loss ([\d.]+), validation accuracy "
                      r"([\d.]+)", text)
    assert out.stat().st_size > 1000
    assert imported == trained and trained > 0.5, text  # 60 steps: well above chance (0.1)
    assert diff < 1e-4, text
    assert 0.0 < float(tuned.group(1)) < 2.0 and float(tuned.group(2)) > 0.5, text
