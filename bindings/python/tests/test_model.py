import json
import subprocess
import threading

import numpy as np
import pytest

import energyflow as ef
from conftest import DIM, cli, read_safetensors, small_pairs, write_safetensors


def test_load(run_dir):
    out, _ = run_dir
    m = ef.load(out)
    assert (m.input_dim, m.output_dim, m.step) == (DIM, DIM, 4)
    assert m.config["model"]["input_embedding_dim"] == DIM
    assert ef.load(out / "latest").step == 4
    with pytest.raises(FileNotFoundError):
        ef.load(out / "nothing")


def test_infer_dtypes_orders_and_shapes(run_dir):
    m = ef.load(run_dir[0])
    x, _ = small_pairs()
    y = m.infer(x)
    assert y.shape == (80, DIM) and y.dtype == np.float32
    assert np.allclose(m.infer(x.astype(np.float64)), y, atol=1e-6)
    assert np.allclose(m.infer(np.asfortranarray(x)), y, atol=1e-6)
    h = x.astype(np.float16)
    assert np.allclose(m.infer(h), m.infer(h.astype(np.float32)), atol=1e-6)
    assert m.infer(x[7]).shape == (DIM,)
    assert np.allclose(m.infer(x[7]), m.infer(x[:32])[7], atol=1e-6)
    out, stats = m.infer(x, return_stats=True)
    assert np.array_equal(out, y) and stats["flows_created"] > 0


def test_infer_refusals(run_dir):
    m = ef.load(run_dir[0])
    with pytest.raises(ValueError, match="width 5"):
        m.infer(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        m.infer(np.zeros((3, DIM), np.int64))
    with pytest.raises(ValueError, match="shape"):
        m.infer(np.zeros((2, 3, DIM), np.float32))
    with pytest.raises(ValueError, match="non-finite"):
        m.infer(np.full((2, DIM), np.inf, np.float32))
    with pytest.raises(ValueError, match="numpy array"):
        m.infer([[0.0] * DIM])


def test_infer_equals_the_cli(run_dir, tmp_path):
    exe = cli()
    x, _ = small_pairs(50, seed=9)
    write_safetensors(tmp_path / "in.safetensors", {"input": x})
    subprocess.run(
        [exe, "infer", "--checkpoint", str(run_dir[0]), "--input", str(tmp_path / "in.safetensors"),
         "--output", str(tmp_path / "out.safetensors")],
        check=True, capture_output=True,
    )
    want = read_safetensors(tmp_path / "out.safetensors", "output")
    assert np.allclose(ef.load(run_dir[0]).infer(x), want, atol=1e-6, rtol=0)


def test_two_threads_infer_on_one_model(run_dir):
    m = ef.load(run_dir[0])
    xs = [small_pairs(200, seed=s)[0] for s in (1, 2)]
    alone = [m.infer(x) for x in xs]
    got = [None, None]

    def work(i):
        for _ in range(3):
            got[i] = m.infer(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(a, g) for a, g in zip(alone, got))


def test_model_evaluate_and_evaluate(run_dir):
    out, report = run_dir
    m = ef.load(out)
    x, y = small_pairs()
    r = m.evaluate(x, y)
    assert r["n"] == 80 and -1 <= r["cosine"] <= 1 and r["linear_cosine"] > 0.99
    pred = m.infer(x)
    cos = np.sum(pred * y, 1) / (np.linalg.norm(pred, axis=1) * np.linalg.norm(y, axis=1))
    assert abs(r["cosine"] - cos.mean()) < 1e-4
    assert np.isclose(r["mse"], np.mean((pred - y) ** 2), rtol=1e-4)
    with pytest.raises(ValueError, match="width"):
        m.evaluate(x[:, :4], y)
    assert ef.evaluate(out, data=(x, y)) == report
    with pytest.raises(FileNotFoundError):
        ef.evaluate(out / "nothing")


def test_a_damaged_checkpoint_is_a_valueerror(run_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(run_dir[0] / "best", bad)
    meta = json.loads((bad / "checkpoint.json").read_text())
    (bad / meta["weights"]).write_bytes(b"not safetensors")
    with pytest.raises(ValueError):
        ef.load(bad)
