"""Shared helpers: small pairs and config, a trained run, the CLI binary,
and safetensors files written and read without another package."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

import energyflow as ef

REPO = Path(__file__).resolve().parents[3]
DIM = 8


def small_pairs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x, np.ascontiguousarray(x[:, ::-1])


# The tuned preset at width 8: 64 training rows = 2 steps an epoch.
# The default preset with a small lattice and mapper, and its propagation on
# (the default's is a pass-through, which starts no flow to test).
SMALL = {
    "model": {"input_embedding_dim": DIM, "output_embedding_dim": DIM, "lattice_width": 6, "lattice_height": 6,
              "mapper_hidden": 64},
    "flow": {"pass_through": False},
    # The learned baselines' fit is tested in Rust (tests/readout.rs,
    # tests/cli_train.rs); here it would be most of each run's time.
    "train": {"epochs": 2, "learned_baselines": False},
}


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "small"
    report = ef.train(out, config=SMALL, data=small_pairs(), seed=3)
    return out, report


def cli():
    """The energyflow binary (ENERGYFLOW_BIN, else the repository's release
    build); skips, saying so, when there is none."""
    exe = Path(os.environ.get("ENERGYFLOW_BIN", REPO / "target" / "release" / "energyflow"))
    if not exe.is_file():
        pytest.skip(f"no energyflow binary at {exe}: `cargo build --release` first")
    return str(exe)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    Path(path).write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path, name):
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(raw[8 : 8 + n])[name]
    assert meta["dtype"] == "F32"
    lo, hi = meta["data_offsets"]
    return np.frombuffer(raw[8 + n + lo : 8 + n + hi], dtype="<f4").reshape(meta["shape"])
