import numpy as np
import pytest

import energyflow as ef
from conftest import SMALL, small_pairs


def test_version_and_presets():
    assert ef.__version__ == "0.1.0"
    assert ef.presets() == ["debug", "experiment", "optimized", "tuned"]


def test_preset_config_has_every_field_and_round_trips(tmp_path):
    cfg = ef.preset_config("tuned")
    assert set(cfg) == {"model", "flow", "train"}
    assert cfg["model"]["lattice_width"] == 20 and cfg["flow"]["pass_through"] is True
    assert "planned_steps" in cfg["train"]  # an unset field is None, not missing
    debug = ef.preset_config("debug")
    assert (debug["model"]["lattice_width"], debug["train"]["batch_size"]) == (20, 8)
    # The whole dict back as a config is the preset itself.
    cfg["model"].update(input_embedding_dim=8, output_embedding_dim=8)
    cfg["train"]["epochs"] = 1
    ef.train(tmp_path / "r", config=cfg, data=small_pairs(), max_steps=1)
    assert ef.load(tmp_path / "r").config == cfg
    with pytest.raises(ValueError, match="preset"):
        ef.preset_config("huge")


def test_bundled_data():
    x, y, texts = ef.bundled_data()
    assert x.shape == y.shape == (4000, 384) and x.dtype == y.dtype == np.float32
    assert len(texts) == 4000 and all(isinstance(a, str) and isinstance(b, str) for a, b in texts[:5])
    assert np.allclose(np.linalg.norm(x[:10], axis=1), 1, atol=1e-3)


def test_config_errors_are_the_clis_messages(tmp_path):
    bad = {"train": {"learning_rate": -1.0}, "model": SMALL["model"]}
    with pytest.raises(ValueError, match=r"train\.learning_rate"):
        ef.train(tmp_path / "a", config=bad, data=small_pairs())
    with pytest.raises(ValueError, match="unknown"):
        ef.train(tmp_path / "b", config={"lattice": {"width": 3}}, data=small_pairs())
    with pytest.raises(ValueError, match="device"):
        ef.train(tmp_path / "c", config=SMALL, data=small_pairs(), device="tpu")
    with pytest.raises(FileNotFoundError):
        ef.train(tmp_path / "d", config=tmp_path / "missing.toml", data=small_pairs())
    toml = tmp_path / "c.toml"
    toml.write_text("[model]\ninput_embedding_dim = 8\noutput_embedding_dim = 8\n[train]\nepochs = 1\n")
    r = ef.train(tmp_path / "e", config=str(toml), data=small_pairs())
    assert r["n"] == 8
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").glob("*/checkpoint.json"))
