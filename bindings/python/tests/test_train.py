import json
import subprocess
import _thread

import numpy as np
import pytest

import energyflow as ef
from conftest import SMALL, cli, small_pairs


def test_train_returns_the_eval_line_and_writes_the_clis_folder(run_dir):
    out, report = run_dir
    assert set(report) >= {"n", "loss", "mse", "cosine", "identity_cosine", "linear_cosine"}
    assert report["split"] == "test" and report["n"] == 8 and report["step"] == 4
    assert {p.name for p in out.iterdir()} >= {"best", "latest", "metrics.jsonl"}
    assert ef.evaluate(out, data=small_pairs()) == report
    with pytest.raises(ValueError, match="cannot be reopened"):
        ef.evaluate(out)  # pairs given in memory must be given again


def test_callback_gets_every_metrics_record(tmp_path):
    events = []
    ef.train(tmp_path / "r", config=SMALL, data=small_pairs(), seed=1, callback=events.append)
    lines = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert events == lines
    assert [e["kind"] for e in events] == ["step", "step", "validation"] * 2


def test_same_seed_same_model_other_seed_other(tmp_path):
    x, y = small_pairs()
    outs = []
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        ef.train(tmp_path / name, config=SMALL, data=(x, y), seed=seed)
        outs.append(ef.load(tmp_path / name).infer(x))
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_a_raising_callback_checkpoints_and_resume_reaches_the_same_weights(tmp_path):
    x, y = small_pairs()
    ef.train(tmp_path / "whole", config=SMALL, data=(x, y), seed=2)

    def boom(e):
        if e["kind"] == "step" and e["step"] == 1:
            raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        ef.train(tmp_path / "cut", config=SMALL, data=(x, y), seed=2, callback=boom)
    assert ef.load(tmp_path / "cut" / "latest").step == 1
    # A fresh start there is refused; resume continues it.
    with pytest.raises(FileExistsError, match="resume"):
        ef.train(tmp_path / "cut", config=SMALL, data=(x, y), seed=2)
    ef.train(tmp_path / "cut", data=(x, y), resume=True)
    a = ef.load(tmp_path / "whole" / "latest")
    b = ef.load(tmp_path / "cut" / "latest")
    assert a.step == b.step == 4
    assert np.array_equal(a.infer(x), b.infer(x))


def test_ctrl_c_raises_keyboardinterrupt_after_a_checkpoint(tmp_path):
    def interrupt(e):
        if e["kind"] == "step" and e["step"] == 1:
            _thread.interrupt_main()  # as Ctrl-C: Python's SIGINT handler runs

    with pytest.raises(KeyboardInterrupt):
        ef.train(tmp_path / "r", config=SMALL, data=small_pairs(), callback=interrupt)
    assert ef.load(tmp_path / "r" / "latest").step == 1


def test_overwrite_and_resume_refusals(run_dir, tmp_path):
    with pytest.raises(ValueError, match="resume"):
        ef.train(tmp_path / "empty", config=SMALL, data=small_pairs(), resume=True)
    with pytest.raises(ValueError):
        ef.train(tmp_path / "x", resume=True, overwrite=True)
    with pytest.raises(ValueError, match="rows"):
        ef.train(tmp_path / "y", config=SMALL, data=(np.zeros((5, 8), np.float32), np.zeros((4, 8), np.float32)))
    with pytest.raises(ValueError, match="non-finite"):
        x, y = small_pairs()
        x[3, 2] = np.nan
        ef.train(tmp_path / "z", config=SMALL, data=(x, y))
    r = ef.train(tmp_path / "o", config=SMALL, data=small_pairs(), max_steps=1)
    assert r["step"] == 1
    r = ef.train(tmp_path / "o", config=SMALL, data=small_pairs(), overwrite=True, max_steps=2)
    assert r["step"] == 2


def test_the_cli_resumes_and_evaluates_a_python_run(tmp_path):
    exe = cli()
    x, y = small_pairs()
    from conftest import write_safetensors

    data = tmp_path / "pairs.safetensors"
    write_safetensors(data, {"input": x, "target": y})
    ef.train(tmp_path / "r", config=SMALL, data=str(data), seed=4, max_steps=2)
    subprocess.run([exe, "train", "--out", str(tmp_path / "r"), "--resume", "--quiet"], check=True, capture_output=True)
    assert ef.load(tmp_path / "r" / "latest").step == 4
    line = subprocess.run(
        [exe, "eval", "--checkpoint", str(tmp_path / "r"), "--json"], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(line) == ef.evaluate(tmp_path / "r")
